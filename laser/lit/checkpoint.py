"""What a checkpoint holds beyond Lightning's own state (weights, c_ref, optimiser, scheduler, step,
loop progress), so that a resumed run continues as the uninterrupted one would: the samplers' RNG
states, the evaluation history, the global RNGs and the training config a resume must match. The
data order's position is the datamodule's (`PromptDataModule.state_dict`); the self-reward warm-up
phase is a function of the restored step and the config.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)
KEY = "laser"  # the checkpoint's entry for this file's state


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """A training checkpoint, its tensors memory-mapped (cheap for large models); a clear error,
    naming `key`, for a missing, unreadable (truncated, corrupt) or foreign file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"{key}={str(path)!r} does not exist; give a checkpoint file (<run dir>/checkpoints/last.ckpt)"
        )
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch reports a damaged file in several ways
        raise ValueError(
            f"{key}={str(path)!r} cannot be read ({type(err).__name__}: {str(err).splitlines()[0]}); it is "
            "truncated or corrupt (e.g. the run was killed while saving it): resume from another "
            "checkpoint of the run (checkpoints/step*.ckpt)"
        ) from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "global_step"} <= set(checkpoint):
        raise ValueError(f"{key}={str(path)!r} is not a training checkpoint (no state_dict and global_step)")
    return checkpoint


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {dotted key: leaf value}."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for name, value in tree.items():
        out |= flatten(value, f"{prefix}.{name}" if prefix else str(name))
    return out


def config_differences(saved: dict, current: dict) -> list[str]:
    """`key: saved -> current` for every dotted key whose value differs (or exists on one side)."""
    old, new = flatten(saved), flatten(current)
    missing = "(absent)"
    return [
        f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing)
    ]


# -- the module's state -----------------------------------------------------------------------


def _per_rank(module: LightningModule, state: torch.Tensor | None) -> list[torch.Tensor | None]:
    """`state` of every data-parallel rank (every rank must call this), in rank order."""
    trainer = module._trainer
    world = 1 if trainer is None else trainer.world_size
    if world == 1 or state is None:  # None alike on every rank (no accelerator generator yet)
        return [state] * world
    gathered = module.all_gather(state.to(module.device))  # (world, L)
    return [row.cpu() for row in gathered]


def save_module_state(module: LightningModule, checkpoint: dict) -> None:
    """The samplers' RNG states (of every rank) and the evaluation history, into `checkpoint`."""
    samplers = {}
    for name, sampler in (("train", module.sampler), ("eval", module.eval_sampler)):
        state = sampler.rng_state()
        samplers[name] = {part: _per_rank(module, value) for part, value in state.items()}
    checkpoint.setdefault(KEY, {}).update(samplers=samplers, val_history=list(module.val_history))


def load_module_state(module: LightningModule, checkpoint: dict) -> None:
    """Restore what `save_module_state` saved; warn when the checkpoint lacks it."""
    saved = checkpoint.get(KEY, {})
    if "samplers" not in saved:
        log.warning(
            "the checkpoint holds no sampler RNG state (written by an older version): the resumed run "
            "samples other responses than the uninterrupted run would"
        )
        return
    trainer = module._trainer
    rank, world = (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)
    for name, sampler in (("train", module.sampler), ("eval", module.eval_sampler)):
        state = saved["samplers"][name]
        if len(state["cpu"]) != world:
            log.warning(
                "the checkpoint was written by %d data-parallel ranks, this run has %d: the samplers "
                "start from their seeds", len(state["cpu"]), world,
            )  # fmt: skip
            break
        sampler.load_rng_state({part: values[rank] for part, values in state.items()})
    module.val_history[:] = saved["val_history"]


# -- the run's state ----------------------------------------------------------------------------


def global_rng_state() -> dict[str, Any]:
    """torch's (CPU and CUDA), Python's and NumPy's global RNG states, as tensors and plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "gauss": (has_gauss, gauss)},
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy["pos"], *numpy["gauss"]))


class ResumeState(Callback):
    """Writes the training config and the global RNG states into every checkpoint, and restores the
    RNG states on resume (the config is checked before anything is built: `check_resume`).

    Args:
        training_config: the resolved config blocks that shape training.
    """

    def __init__(self, training_config: dict) -> None:
        self.training_config = training_config

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        checkpoint.setdefault(KEY, {}).update(training_config=self.training_config, rng=global_rng_state())

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        if "rng" in checkpoint.get(KEY, {}):
            set_global_rng_state(checkpoint[KEY]["rng"])
