"""Training step time split by stage: rollout, in-rollout score, reward, update.

    python -m laser.profiling.stage_time [--steps 20] [--warmup 3] [--threads T] [--device cpu|cuda]
                                          [--json PATH] [overrides ...]
    python -m laser.profiling.stage_time --metrics <run>/metrics.csv [--json PATH]

With `--metrics` it trains nothing: it reads the stage times a finished run logged
(`train/timing_s/*` every `trainer.log_every_n_steps` steps) and makes the same table from them.

Runs `warmup + steps` training steps of the configured experiment (Hydra overrides as for
`laser.run`; the default is the toy model on CPU) through a Lightning Trainer, with the objects
built as `laser.run` builds them. Both self-reward warm-ups default to 0, so every step scores in
the rollout, mixes advantages and adds the MSE (override them to time a warm-up step). The stages
time themselves (`laser.lit.timing`): this benchmark reads the module's timer after every step
(what runs log as `train/timing_s/*` in metrics.csv):

    step       the module's training step, logging excluded
    rollout    `sampler.sample` minus the score's step: prefill, decoding, sampling
    score      the decoding step only the in-rollout score needs, timed by the generation loop:
               without the score, generation stops once every row has emitted EOS (or after
               max_new_tokens samples); with it, one more step feeds the rows that ended last so
               that the logits after their EOS exist. The log p(z) reads of the rows that ended
               earlier ride along with steps taken anyway and stay in `rollout`.
    reward     `module.verify`: decoding the responses to text and the verifier
    reference  the reference model's forward (0 without one)
    update     log-prob forward/backward over micro-batches, clipping, optimiser and scheduler steps
    other      step minus the stages above: advantages, self-reward mixing, metrics

On CUDA every clock read follows torch.cuda.synchronize(). Per stage the table gives the median
over the measured steps and its share of the summed step time (shares of the summed times add up
to 1). Generated tokens per second are response tokens (EOS included) over rollout time; training
tokens per second are the non-padding prompt + response tokens of the update's forward/backward
over update time. Peak memory is torch.cuda.max_memory_allocated over the run on GPU,
and the process's peak resident set size (its whole life, start-up included) on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
from dataclasses import asdict
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from laser import metric_names as names
from laser.assembly import build_module, load_inputs, make_trainer
from laser.configs import RunConfig, validate
from laser.utils.compose import compose_config
from laser.utils.threads import configure_threads

STAGES = ("rollout", "score", "reward", "reference", "update", "other")
LOGGED = ("sample", "score", "verify", "reference", "update", "step")  # train/timing_s/<name>
DEFAULTS = [
    "paths.output_dir=outputs/benchmarks",
    "paths.root_dir=.",
    "algo.self_reward.reasoning_warmup_steps=0",
    "algo.self_reward.self_reward_warmup_steps=0",
]


class StageClock(Callback):
    """Per training step: the stage times and token counts the module logged for it."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        tokens = (names.train(names.TOKENS_RESPONSE), names.train(names.TOKENS_PROMPT))
        logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k in tokens}
        self.steps.append(logged | {names.train(k): v for k, v in pl_module.timer.stats().items()})

    def measured(self, warmup: int) -> list[dict[str, float]]:
        return by_stage(self.steps[warmup:])


def by_stage(logged: list[dict[str, float]]) -> list[dict[str, float]]:
    """Logged steps (`train/timing_s/*`, `train/tokens/*`) by stage (`rollout` = sample minus
    score; `other` = the step minus every timed stage), with their token counts."""
    steps = []
    for raw in logged:
        timed = {k: raw.get(names.train(names.timing(k)), 0.0) for k in LOGGED}
        s = {"rollout": timed["sample"] - timed["score"], "reward": timed["verify"]}
        s |= {k: timed[k] for k in ("score", "reference", "update", "step")}
        s["other"] = s["step"] - sum(s[k] for k in STAGES if k != "other")
        s["generated_tokens"] = raw.get(names.train(names.TOKENS_RESPONSE), 0.0)
        s["training_tokens"] = s["generated_tokens"] + raw.get(names.train(names.TOKENS_PROMPT), 0.0)
        steps.append(s)
    return steps


def logged_steps(metrics_csv: Path) -> list[dict[str, float]]:
    """The stage times and token counts a run wrote to its metrics.csv, one dict per logged step
    (the CSV logger spreads a step over several rows)."""
    frame = pd.read_csv(metrics_csv)
    step_time = names.train(names.timing("step"))
    if step_time not in frame.columns:
        raise ValueError(
            f"{metrics_csv} has no {step_time} column: give the metrics.csv of a training run made "
            "with the stage timer (runs log train/timing_s/* every trainer.log_every_n_steps steps)"
        )
    tokens = {names.train(names.TOKENS_RESPONSE), names.train(names.TOKENS_PROMPT)}
    prefix = names.train(names.TIMING) + "/"
    wanted = [c for c in frame.columns if c.startswith(prefix) or c in tokens]
    per_step = frame.groupby("step")[wanted].first().dropna(subset=[step_time])  # first non-null
    return [row.dropna().to_dict() for _, row in per_step.iterrows()]


def from_metrics(metrics_csv: Path) -> dict:
    """The stage table of a finished run, read from its metrics.csv (no training)."""
    steps = by_stage(logged_steps(metrics_csv))
    config = {"metrics": str(metrics_csv), "logged_steps": len(steps)}
    return {"config": config, **summarise(steps)}


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


def summarise(steps: list[dict[str, float]]) -> dict:
    """Medians, shares of the summed step time and token rates of the measured steps; `timed`:
    the share of the step time that the timed stages account for (1 - other's)."""
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
        "timed": 1 - stages["other"]["share"],
        "per_step": [{f"{k}_ms": 1e3 * s[k] for k in (*STAGES, "step")} for s in steps],
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
    lines = []
    if "hardware" in result:
        hw = result["hardware"]
        device = f"{hw['gpu']} ({hw['gpu_memory_gib']} GiB), " if "gpu" in hw else ""
        lines.append(
            f"hardware: {device}{hw['cpu']}, {hw['cpu_count']} CPUs, {hw['torch_threads']} torch "
            f"threads; torch {hw['torch']}"
        )
    lines += [
        "config: " + ", ".join(f"{k}={v}" for k, v in result["config"].items()),
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
        f"timed stages add up to {100 * result['timed']:.1f}% of the step time",
    ]
    if "peak_memory" in result:
        memory = result["peak_memory"]
        lines.append(f"peak memory {memory['bytes'] / 2**20:.1f} MiB ({memory['kind']})")
    return "\n".join(lines)


def benchmark(cfg: DictConfig, steps: int, warmup: int, device: str | None = None) -> dict:
    """Run `warmup + steps` training steps and return the summary of the last `steps`."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was given but torch sees no CUDA device; use --device cpu")
    run = validate(cfg)
    L.seed_everything(cfg.seed, workers=True)
    module, datamodule = build_module(cfg, run, *load_inputs(run))
    clock = StageClock()
    trainer = make_benchmark_trainer(cfg, clock, warmup + steps, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    if len(clock.steps) != warmup + steps:
        raise RuntimeError(f"training stopped after {len(clock.steps)} of {warmup + steps} steps")
    root = trainer.strategy.root_device
    result = summarise(clock.measured(warmup)) | {"peak_memory": peak_memory(root)}
    config = describe_run(run, steps, warmup) | {"precision": str(trainer.precision)}
    return {"hardware": hardware(root), "config": config, **result}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="measured training steps")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured training steps before them")
    parser.add_argument("--threads", type=int, default=None, help="default: the config's num_threads")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: the trainer's")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--metrics", type=Path, default=None, help="read a finished run's metrics.csv instead of training"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the default config")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"--steps must be >= 1 and --warmup >= 0 (got {args.steps}, {args.warmup})")
    if args.metrics is not None:
        result = from_metrics(args.metrics)
    else:
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
