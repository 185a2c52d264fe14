"""Training step time split by stage: rollout, in-rollout score, reward, update.

    python -m laser.benchmarks.stage_time [--steps 20] [--warmup 3] [--threads T] [--device cpu|cuda]
                                          [--json PATH] [overrides ...]

Runs `warmup + steps` training steps of the configured experiment (Hydra overrides as for
`laser.run`; the default is the toy model on CPU) through a Lightning Trainer, with the objects
built as `laser.run` builds them. Both self-reward warm-ups default to 0, so every step scores in
the rollout, mixes advantages and adds the MSE (override them to time a warm-up step). The
module's own methods run unchanged; thin wrappers read the clock around them:

    step     Lightning's on_train_batch_start to on_train_batch_end (the batch fetch is outside)
    rollout  `sampler.sample` minus the score steps below: prefill, decoding, sampling
    score    the decoding steps that only the in-rollout score needs (see below)
    reward   `module.verify`: decoding the responses to text and the verifier
    update   `module.update`: log-prob forward/backward over micro-batches, clipping, optimiser
             and scheduler steps
    other    step minus the four: the reference pass, advantages, self-reward mixing, metrics
             and their logging, Lightning's per-step work

The score is timed directly. Without the score, generation stops as soon as every row has
emitted EOS (or after max_new_tokens samples); with it, one more decoding step is taken so that
the logits after the last EOS exist. A forward pre-hook on the policy follows each generation
micro-batch (a forward without a KV cache starts one) and marks a decoding step as the score's
when it feeds fewer rows than the batch (the score's step feeds only the rows that ended last),
when every row has already been fed its EOS, or when it is the max_new_tokens-th decoding step:
generation without the score never takes such a step. Those forwards are timed, synchronised on
CUDA. The log p(z) reads themselves (a log-softmax over the rows that just ended, inside steps
that happen anyway) stay in `rollout`; they are small next to a forward.

On CUDA every clock read follows torch.cuda.synchronize(). Per stage the table gives the median
over the measured steps and its share of the summed step time (shares of the summed times add up
to 1). Generated tokens per second are response tokens (EOS included) over rollout time; training
tokens per second are the non-padding prompt + response tokens of the update's forward/backward
over update time. Peak memory is torch.cuda.max_memory_allocated over the measured steps on GPU,
and the process's peak resident set size (its whole life, start-up included) on CPU.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from laser.assembly import build_module, load_inputs, make_trainer
from laser.configs import RunConfig, validate
from laser.lit.module import LaserModule
from laser.utils.compose import compose_config
from laser.utils.threads import configure_threads

STAGES = ("rollout", "score", "reward", "update", "other")
DEFAULTS = [
    "paths.output_dir=outputs/benchmarks",
    "paths.root_dir=.",
    "algo.self_reward.reasoning_warmup_steps=0",
    "algo.self_reward.self_reward_warmup_steps=0",
]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ScoreStepTimer:
    """Times the decoding steps a generation takes only for the in-rollout score (module docstring).

    Args:
        model: the policy; hooks are registered on it and act only while `active`.
        stop_ids: the ids that end a response (the sampler's).
        max_new_tokens: the sampler's limit.
    """

    def __init__(self, model: torch.nn.Module, stop_ids: Sequence[int], max_new_tokens: int) -> None:
        self.stop_ids, self.max_new_tokens = torch.tensor(list(stop_ids)), max_new_tokens
        self.active = False
        self.seconds, self.steps = 0.0, 0
        self._timing = False
        model.register_forward_pre_hook(self._before, with_kwargs=True)
        model.register_forward_hook(self._after)

    def _before(self, model: torch.nn.Module, args, kwargs: dict) -> None:
        if not self.active:
            return
        ids = kwargs["input_ids"]  # (N, P) at prefill, (N, 1) when decoding
        if kwargs.get("cache") is None:  # prefill: a new generation micro-batch
            self._decode_steps = 0
            self._ended = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)  # (N,)
            self._stops = self.stop_ids.to(ids.device)
            return
        self._decode_steps += 1
        if ids.shape[0] < self._ended.shape[0]:  # only the score's step feeds fewer rows
            self._timing = True
        else:
            self._ended |= torch.isin(ids[:, -1], self._stops)  # fed their EOS, now or earlier
            self._timing = self._decode_steps == self.max_new_tokens or bool(self._ended.all())
        if self._timing:
            synchronize(ids.device)
            self._start = time.perf_counter()

    def _after(self, model: torch.nn.Module, args, output) -> None:
        if self.active and self._timing:
            synchronize(output.logits.device)
            self.seconds += time.perf_counter() - self._start
            self.steps += 1
            self._timing = False


class StageClock(Callback):
    """Per training step: wall time of the step and of the wrapped module methods, and token counts."""

    def __init__(self, warmup: int) -> None:
        self.device, self.warmup = torch.device("cpu"), warmup
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] | None = None
        self.score: ScoreStepTimer | None = None

    def instrument(self, module: LaserModule, device: torch.device) -> None:
        """Wrap the stages' methods of `module` (instance attributes; the code they run is unchanged)."""
        self.device = device
        sampler = module.sampler
        self.score = ScoreStepTimer(module.policy, sampler.stop_ids, sampler.max_new_tokens)
        sampler.sample = self._timed_sample(sampler.sample)
        module.verify = self.timed("reward", module.verify)
        module.update = self.timed("update", module.update, training_tokens)

    def timed(self, stage: str, fn: Callable, count: Callable | None = None) -> Callable:
        """`fn`, adding its synchronised wall time (and `count(args, result)`) to the current step."""

        def wrapper(*args, **kwargs):
            if self.current is None:  # outside a training step (c_ref estimate, validation)
                return fn(*args, **kwargs)
            synchronize(self.device)
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            synchronize(self.device)
            self.current[stage] += time.perf_counter() - start
            for key, value in (count(args, result) if count else {}).items():
                self.current[key] += value
            return result

        return wrapper

    def _timed_sample(self, sample: Callable) -> Callable:
        timed = self.timed("generation", sample, generated_tokens)
        signature = inspect.signature(sample)

        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            self.score.active = self.current is not None and bound.arguments["score"]
            self.score.seconds, self.score.steps = 0.0, 0
            try:
                return timed(*args, **kwargs)
            finally:
                if self.score.active:
                    self.current["score"] += self.score.seconds
                    self.current["score_steps"] += self.score.steps
                self.score.active = False

        return wrapper

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if len(self.steps) == self.warmup and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.current = defaultdict(float)
        synchronize(self.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        synchronize(self.device)
        self.current["step"] = time.perf_counter() - self._start
        self.steps.append(dict(self.current))
        self.current = None

    def measured(self) -> list[dict[str, float]]:
        """The steps after the warm-up, with `rollout` (generation minus score) and `other` filled in."""
        steps = []
        for raw in self.steps[self.warmup :]:
            s = {key: raw.get(key, 0.0) for key in ("score", "reward", "update", "step")}
            s["rollout"] = raw.get("generation", 0.0) - s["score"]
            s["other"] = s["step"] - sum(s[k] for k in ("rollout", "score", "reward", "update"))
            for key in ("score_steps", "generated_tokens", "training_tokens"):
                s[key] = raw.get(key, 0.0)
            steps.append(s)
        return steps


def generated_tokens(args, rollout) -> dict[str, float]:
    return {"generated_tokens": rollout.response_mask.sum().item()}


def training_tokens(args, result) -> dict[str, float]:
    rollout = args[0]
    return {"training_tokens": (rollout.prompt_mask.sum() + rollout.response_mask.sum()).item()}


def make_benchmark_trainer(cfg: DictConfig, clock: StageClock, steps: int, device: str | None) -> L.Trainer:
    """The config's trainer (accelerator, precision) for `steps` steps, without validation,
    checkpoints, loggers or progress bar."""
    options = {} if device is None else {"accelerator": "gpu" if device == "cuda" else "cpu", "devices": 1}
    return make_trainer(
        cfg,
        max_steps=steps,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        callbacks=[clock],
        enable_checkpointing=False,
        enable_progress_bar=False,
        **options,
    )


def summarise(steps: list[dict[str, float]], device: torch.device) -> dict:
    """Medians, shares of the summed step time, token rates and peak memory of the measured steps."""
    total = {key: sum(s[key] for s in steps) for key in steps[0]}
    stages = {
        name: {
            "median_ms": 1e3 * statistics.median(s[name] for s in steps),
            "share": total[name] / total["step"],
        }
        for name in STAGES
    }
    return {
        "stages": stages,
        "step_median_ms": 1e3 * statistics.median(s["step"] for s in steps),
        "generated_tokens_per_step": total["generated_tokens"] / len(steps),
        "generated_tokens_per_s": total["generated_tokens"] / total["rollout"],
        "training_tokens_per_step": total["training_tokens"] / len(steps),
        "training_tokens_per_s": total["training_tokens"] / total["update"],
        "peak_memory": peak_memory(device),
        "per_step": [
            {f"{k}_ms": 1e3 * s[k] for k in (*STAGES, "step")} | {"score_steps": s["score_steps"]}
            for s in steps
        ],
    }


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"bytes": torch.cuda.max_memory_allocated(device), "kind": "torch.cuda.max_memory_allocated"}
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"bytes": kib * 1024, "kind": "peak RSS of the process"}


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def hardware(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device.type,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1)}
    return info


def describe_run(run: RunConfig, steps: int, warmup: int) -> dict:
    model = run.model.name_or_path or "tiny {hidden_size}x{num_layers}".format(**asdict(run.model.tiny))
    return {
        "model": model,
        "dtype": run.model.dtype if run.model.name_or_path else "float32",
        "algo": run.algo.name,
        "prompts_per_step": run.data.batch_size,
        "group_size": run.algo.group_size,
        "max_new_tokens": run.rollout.max_new_tokens,
        "steps": steps,
        "warmup": warmup,
    }


def format_report(result: dict) -> str:
    hw, cfg = result["hardware"], result["config"]
    device = f"{hw['gpu']} ({hw['gpu_memory_gib']} GiB), " if "gpu" in hw else ""
    lines = [
        f"hardware: {device}{hw['cpu']}, {hw['cpu_count']} CPUs, {hw['torch_threads']} torch threads; "
        f"torch {hw['torch']}",
        "config: " + ", ".join(f"{k}={v}" for k, v in cfg.items()),
        f"{'stage':8s} {'median ms':>10s} {'share':>7s}",
    ]
    for name, s in result["stages"].items():
        lines.append(f"{name:8s} {s['median_ms']:10.2f} {100 * s['share']:6.2f}%")
    lines += [
        f"{'step':8s} {result['step_median_ms']:10.2f}",
        f"generated tokens/s {result['generated_tokens_per_s']:10.1f} "
        f"({result['generated_tokens_per_step']:.1f} response tokens per step / rollout time)",
        f"training tokens/s  {result['training_tokens_per_s']:10.1f} "
        f"({result['training_tokens_per_step']:.1f} prompt + response tokens per step / update time)",
        f"peak memory {result['peak_memory']['bytes'] / 2**20:.1f} MiB ({result['peak_memory']['kind']})",
    ]
    return "\n".join(lines)


def benchmark(cfg: DictConfig, steps: int, warmup: int, device: str | None = None) -> dict:
    """Run `warmup + steps` training steps and return the summary of the last `steps`."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was given but torch sees no CUDA device; use --device cpu")
    run = validate(cfg)
    L.seed_everything(cfg.seed, workers=True)
    module, datamodule = build_module(cfg, run, *load_inputs(run))
    clock = StageClock(warmup)
    trainer = make_benchmark_trainer(cfg, clock, warmup + steps, device)
    clock.instrument(module, trainer.strategy.root_device)
    trainer.fit(module, datamodule=datamodule)
    if len(clock.steps) != warmup + steps:
        raise RuntimeError(f"training stopped after {len(clock.steps)} of {warmup + steps} steps")
    result = summarise(clock.measured(), clock.device)
    config = describe_run(run, steps, warmup) | {"precision": str(trainer.precision)}
    return {"hardware": hardware(clock.device), "config": config, **result}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="measured training steps")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured training steps before them")
    parser.add_argument("--threads", type=int, default=None, help="default: the config's num_threads")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: the trainer's")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the default config")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"--steps must be >= 1 and --warmup >= 0 (got {args.steps}, {args.warmup})")
    cfg = compose_config([*DEFAULTS, *args.overrides])
    configure_threads(cfg.get("num_threads") if args.threads is None else args.threads)
    result = benchmark(cfg, args.steps, args.warmup, args.device)
    print(format_report(result), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
