"""Assembly of a training run from its validated config: the tokenizer and the self-reward token,
the datasets, the samplers, the LightningModule, the Trainer, and the export of the final policy.

The entry points (`laser.run`, `laser.evaluate`), the benchmarks and the score probe build their
objects here, as training does.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import FSDPStrategy
from omegaconf import DictConfig, OmegaConf

from laser.algo import check_c_ref
from laser.configs import RolloutConfig, RunConfig, upgrade_renamed_keys
from laser.data.datamodule import PromptDataModule
from laser.data.sources import build_datasets, dataset_key
from laser.lit.callbacks import SameConfigOnEveryRank
from laser.lit.checkpoint import KEY as CHECKPOINT_KEY
from laser.lit.checkpoint import ResumeState, config_differences, read_checkpoint
from laser.lit.module import LaserModule
from laser.models.factory import make_base_policy, make_reference
from laser.models.loading import load_tokenizer, stop_token_ids
from laser.rewards import make_verifier
from laser.rollout.sampler import Sampler
from laser.rollout.tokens import resolve_incorrect_token, resolve_single_token

log = logging.getLogger(__name__)
# one optimiser step per batch: checkpoints hold the state after it, which is what resuming needs
warnings.filterwarnings("ignore", message=".*ModelCheckpoint with manual optimization.*")


def check_self_reward(run: RunConfig, tokenizer) -> int | None:
    """Resolve the self-reward token and the stop tokens, and check a constant c_ref, before any
    model loads."""
    stop_ids = stop_token_ids(tokenizer, run.model.stop_tokens)
    sr = run.algo.self_reward
    if sr.token is None:
        return None
    token_id = resolve_single_token(tokenizer, sr.token, "algo.self_reward.token")
    check_not_a_stop_token(token_id, stop_ids, sr.token)
    if sr.constant_c_ref is not None and sr.checks_c_ref:
        check_c_ref(sr.constant_c_ref, sr.beta_v, sr.max_target_logprob)
    if sr.loss == "sft":
        resolve_incorrect_token(tokenizer, sr.incorrect_token, token_id, stop_ids)
    return token_id


def check_not_a_stop_token(token_id: int | None, stop_ids: list[int], token: str | None) -> None:
    if token_id in stop_ids:
        raise ValueError(
            f"algo.self_reward.token={token!r} ends responses (a stop token of this model); "
            "pick a token the policy never emits"
        )


# the config groups that shape training: data-parallel ranks must agree on them (logger names and
# output paths may legitimately differ by rank)
RANK_INVARIANT_KEYS = ("seed", "algo", "model", "data", "rollout", "reward", "optim")


def training_config_text(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml({key: cfg.get(key) for key in RANK_INVARIANT_KEYS}, resolve=True)


def training_config(cfg: DictConfig) -> dict:
    """The resolved config groups that shape training, as plain values (what a resume must match)."""
    return OmegaConf.to_container(OmegaConf.create(training_config_text(cfg)))


def under_current_names(config: dict) -> dict:
    """A training config with its deprecated keys under their current names (a checkpoint written
    before a key was renamed resumes under the new name)."""
    node = OmegaConf.create(config)
    upgrade_renamed_keys(node, quiet=True)
    return OmegaConf.to_container(node)


def check_resume(cfg: DictConfig) -> None:
    """Before anything is built: the checkpoint of `ckpt_path` reads, and was written under this
    run's training config (else an error listing the keys that differ)."""
    path = cfg.get("ckpt_path")
    if not path:
        return
    saved = read_checkpoint(path).get(CHECKPOINT_KEY, {}).get("training_config")
    if saved is None:
        log.warning("ckpt_path=%s holds no training config (an older checkpoint): not compared", path)
        return
    differences = config_differences(under_current_names(saved), under_current_names(training_config(cfg)))
    if differences:
        raise ValueError(
            f"ckpt_path={path} was written under another training config; these keys differ "
            f"(checkpoint -> now): {'; '.join(differences)}. Resume with the run's own settings (its "
            "config.yaml), or start a new run without ckpt_path"
        )


def make_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    """The configured Trainer with its callbacks and loggers; `overrides` replace Trainer arguments
    (callbacks or loggers given there are used instead of the configured ones, which are then not
    built at all)."""
    if "callbacks" not in overrides:
        configured = [instantiate(c) for c in cfg.get("callbacks", {}).values()]
        checks = [SameConfigOnEveryRank(training_config_text(cfg)), ResumeState(training_config(cfg))]
        overrides["callbacks"] = [*configured, *checks]
    if "logger" not in overrides:
        loggers = [lg for lg in (instantiate(c) for c in cfg.get("logger", {}).values()) if lg]
        overrides["logger"] = loggers or False
    return instantiate(cfg.trainer, **overrides)


def make_sampler(
    ro: RolloutConfig, tokenizer, token_id: int | None, seed: int, temperature: float,
    stop_ids: list[int] | None = None,
) -> Sampler:  # fmt: skip
    """A sampler with the rollout block's settings at `temperature`; `stop_ids` end responses
    (None: the tokenizer's EOS)."""
    return Sampler(
        tokenizer,
        max_new_tokens=ro.max_new_tokens,
        temperature=temperature,
        top_p=ro.top_p,
        micro_batch_size=ro.micro_batch_size,
        self_reward_id=token_id,
        seed=seed,
        stop_ids=stop_ids,
    )


def make_samplers(
    run: RunConfig, tokenizer, token_id: int | None, seed: int, stop_ids: list[int] | None = None
) -> tuple[Sampler, Sampler]:
    """Training and evaluation samplers; `stop_ids` end responses (None: the tokenizer's EOS)."""
    ro = run.rollout
    train = make_sampler(ro, tokenizer, token_id, seed, ro.temperature, stop_ids)
    evals = make_sampler(ro, tokenizer, token_id, seed + 1, ro.eval_temperature, stop_ids)
    return train, evals


def gather_sharded_weights(trainer: L.Trainer, out: Path) -> Path | None:
    """Under a strategy that shards the model (FSDP), no rank holds the whole policy: write a
    weights-only checkpoint, whose full state dict Lightning gathers (every rank must call this),
    and return its path; None under any other strategy."""
    if not isinstance(trainer.strategy, FSDPStrategy):
        return None
    path = out / "checkpoints" / "final_weights.ckpt"
    trainer.save_checkpoint(path, weights_only=True)
    return path


def policy_state_from_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The policy's state dict (transformers names) from a LaserModule checkpoint."""
    return policy_state(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])


def policy_state(module_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The policy's entries of a LaserModule state dict, under their transformers names."""
    prefix = "policy."
    return {k[len(prefix) :]: v for k, v in module_state.items() if k.startswith(prefix)}


def export_policy(
    module: LaserModule, tokenizer, run: RunConfig, out: Path, weights: Path | None = None
) -> Path:
    """Save the final policy and tokenizer with save_pretrained, plus the self-reward settings;
    `weights`: a checkpoint to take the policy's weights from (see `gather_sharded_weights`)."""
    path = out / "policy"
    module.policy.generation_config.eos_token_id = module.sampler.stop_ids  # stop where training did
    state = policy_state_from_checkpoint(weights) if weights is not None else None
    module.policy.save_pretrained(path, state_dict=state)
    tokenizer.save_pretrained(path)
    sr = run.algo.self_reward
    info = {
        "token": sr.token,
        "beta_v": sr.beta_v,
        "c_ref": module.c_ref.item(),
        "threshold": sr.threshold,
        "loss": sr.loss,
        "incorrect_token": sr.incorrect_token,
    }
    (path / "self_reward.json").write_text(json.dumps(info, indent=2))
    return path


def export_checkpoint(ckpt: Path) -> Path:
    """An exported policy folder for a training checkpoint (`<run>/checkpoints/<name>.ckpt`):
    the run's final export with the checkpoint's weights and c_ref, saved once beside the
    checkpoint as `<name>.policy/` so that an earlier policy of a run can be evaluated."""
    from transformers import AutoModelForCausalLM

    run_policy = ckpt.parent.parent / "policy"
    if not (run_policy / "config.json").exists():
        raise FileNotFoundError(
            f"{ckpt} is a training checkpoint, but its run has no exported policy at {run_policy} "
            "(the run did not finish): resume it to the end, or evaluate a finished run's checkpoint"
        )
    out = ckpt.with_suffix(".policy")
    if (out / "config.json").exists():
        return out
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    model = AutoModelForCausalLM.from_pretrained(run_policy)
    model.load_state_dict(policy_state(state), strict=True)
    model.save_pretrained(out)
    load_tokenizer(str(run_policy)).save_pretrained(out)
    info = json.loads((run_policy / "self_reward.json").read_text())
    c_ref = state.get("c_ref")
    if c_ref is not None and not torch.isnan(c_ref):  # the checkpoint's own estimate
        info["c_ref"] = c_ref.item()
    (out / "self_reward.json").write_text(json.dumps(info, indent=2))
    log.info("exported %s to %s", ckpt, out)
    return out


def load_inputs(run: RunConfig):
    """The tokenizer, the self-reward token's id and the datasets: the cheap checks that come before
    any model loads. Returns (tokenizer, token_id, DatasetDict with train and eval splits)."""
    tokenizer = load_tokenizer(run.model.name_or_path)
    token_id = check_self_reward(run, tokenizer)
    return tokenizer, token_id, build_datasets(run.data, tokenizer)


def build_module(
    cfg: DictConfig, run: RunConfig, tokenizer, token_id: int | None, data
) -> tuple[LaserModule, PromptDataModule]:
    """The prompt datamodule and the LightningModule: base policy (after its cached warm-up),
    samplers, verifier and, when needed, the reference model."""
    datamodule = PromptDataModule(
        lambda: data, tokenizer, run.data.batch_size, run.data.eval_batch_size, cfg.seed
    )
    policy = make_base_policy(
        run.model, tokenizer, data["train"], dataset_key(run.data), cfg.paths.cache_dir, cfg.seed
    )
    if run.model.gradient_checkpointing:
        policy.activation_checkpointing_enable()
    stop_ids = stop_token_ids(tokenizer, run.model.stop_tokens, policy)
    check_not_a_stop_token(token_id, stop_ids, run.algo.self_reward.token)
    module = LaserModule(
        policy,
        *make_samplers(run, tokenizer, token_id, cfg.seed, stop_ids),
        verifier=make_verifier(run.reward, run.data.task),
        algo=run.algo,
        optim=run.optim,
        self_reward_id=token_id,
        reference=make_reference(policy) if run.algo.needs_reference else None,
        greedy_eval=run.rollout.eval_greedy,
    )
    return module, datamodule
