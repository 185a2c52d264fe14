"""Entry point: `python -m laser.run [overrides]` trains LaSeR (or `algo=grpo`) as configured in conf/."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import FSDPStrategy
from omegaconf import DictConfig, OmegaConf, read_write

from laser.algo import check_c_ref
from laser.configs import RunConfig, register_schemas, validate
from laser.data.datamodule import PromptDataModule
from laser.data.sources import build_datasets, dataset_key
from laser.eval.report import powers_of_two, scaling_table, self_verification, summarise_scaling
from laser.eval.samples import sample_scored
from laser.lit.callbacks import SameConfigOnEveryRank
from laser.lit.module import LaserModule
from laser.models.factory import make_base_policy, make_reference
from laser.models.loading import load_tokenizer, stop_token_ids
from laser.rewards import make_verifier
from laser.rollout.sampler import Sampler
from laser.rollout.tokens import resolve_incorrect_token, resolve_single_token
from laser.utils.loggers import fill_wandb_identity, log_run_config
from laser.utils.provenance import write_run_info
from laser.utils.threads import configure_threads

log = logging.getLogger(__name__)
register_schemas()
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


def make_trainer(cfg: DictConfig, **overrides) -> L.Trainer:
    """The configured Trainer with its callbacks and loggers; `overrides` replace Trainer arguments
    (callbacks or loggers given there are used instead of the configured ones, which are then not
    built at all)."""
    if "callbacks" not in overrides:
        configured = [instantiate(c) for c in cfg.get("callbacks", {}).values()]
        overrides["callbacks"] = [*configured, SameConfigOnEveryRank(training_config_text(cfg))]
    if "logger" not in overrides:
        loggers = [lg for lg in (instantiate(c) for c in cfg.get("logger", {}).values()) if lg]
        overrides["logger"] = loggers or False
    return instantiate(cfg.trainer, **overrides)


def make_samplers(
    run: RunConfig, tokenizer, token_id: int | None, seed: int, stop_ids: list[int] | None = None
):
    """Training and evaluation samplers; `stop_ids` end responses (None: the tokenizer's EOS)."""
    ro = run.rollout
    common = dict(
        max_new_tokens=ro.max_new_tokens,
        top_p=ro.top_p,
        micro_batch_size=ro.micro_batch_size,
        self_reward_id=token_id,
        stop_ids=stop_ids,
    )
    train = Sampler(tokenizer, temperature=ro.temperature, seed=seed, **common)
    evals = Sampler(tokenizer, temperature=ro.eval_temperature, seed=seed + 1, **common)
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
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    prefix = "policy."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


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
        verifier=make_verifier(run.reward),
        algo=run.algo,
        optim=run.optim,
        self_reward_id=token_id,
        reference=make_reference(policy) if run.algo.needs_reference else None,
        greedy_eval=run.rollout.eval_greedy,
    )
    return module, datamodule


def train(cfg: DictConfig) -> tuple[dict[str, float], dict]:
    """Validate the config, build everything, fit, export; returns (final metrics, objects)."""
    run = validate(cfg)
    configure_threads(cfg.get("num_threads"))
    L.seed_everything(cfg.seed, workers=True)
    tokenizer, token_id, data = load_inputs(run)
    fill_wandb_identity(cfg)
    trainer = make_trainer(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    log_run_config(trainer.loggers, cfg, write_run_info(out, cfg.seed))

    module, datamodule = build_module(cfg, run, tokenizer, token_id, data)
    if cfg.get("validate_before_training") and not cfg.get("ckpt_path"):
        trainer.validate(module, datamodule=datamodule, verbose=False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics |= module.final_summary()
    sharded = gather_sharded_weights(trainer, out)
    if not trainer.is_global_zero:  # data-parallel ranks > 0 stop here; rank 0 exports and reports
        return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule}
    export = export_policy(module, tokenizer, run, out, weights=sharded)
    # a per-sample reference c_ref has no constant to score samples with outside training
    if cfg.final_eval.problems > 0 and token_id is not None and run.algo.self_reward.c_ref != "reference":
        if sharded is None:
            metrics |= final_voting_eval(cfg, module, datamodule, out)
        else:  # sampling from sharded weights would need every rank; the export has them all
            log.info("final voting evaluation skipped under FSDP: run laser.evaluate on %s", export)
    print_summary(run, metrics, out, export)
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule}


# how well the final samples' scores rank responses: over all of them, within each prompt, and the
# pooled AUROC that a score knowing only each prompt's difficulty reaches
RANKING_METRICS = ("auroc", "auroc_within", "auroc_difficulty")


def final_voting_eval(cfg: DictConfig, module: LaserModule, datamodule, out: Path) -> dict[str, float]:
    """K scored samples on held-out prompts: majority vs self-reward-weighted voting at k = K."""
    records = datamodule.splits["eval"][: cfg.final_eval.problems]
    k = cfg.final_eval.samples
    samples = sample_scored(
        module.policy, module.eval_sampler, module.verifier, records, k,
        module.sr.beta_v, module.c_ref.item(), loss=module.sr.loss,
    )  # fmt: skip
    summary = summarise_scaling(scaling_table(samples, powers_of_two(k), seed=cfg.seed))
    summary.to_csv(out / "voting.csv")
    verify = self_verification(samples, module.sr.threshold)
    ranking = {f"final/self_verify/{m}": verify[f"self_verify/{m}"] for m in RANKING_METRICS}
    return {f"final/{method}@{k}": float(summary.loc[method, k]) for method in summary.index} | ranking


def print_summary(run: RunConfig, metrics: dict[str, float], out: Path, export: Path) -> None:
    lines = [
        f"== {run.algo.name} finished ==",
        f"eval accuracy            {metrics.get('val/accuracy', float('nan')):.4f}"
        f" (greedy {metrics.get('val/accuracy_greedy', float('nan')):.4f})",
        f"self-reward F1 (last 3)  {metrics.get('summary/self_verify/f1', float('nan')):.4f}",
        f"self-reward AUROC (last 3) {metrics.get('summary/self_verify/auroc', float('nan')):.4f}",
        f"c_ref                    {metrics.get('summary/c_ref', float('nan')):.3f}",
        *voting_lines(metrics),
        f"run directory            {out}",
        f"metrics                  {out / 'metrics.csv'}",
        f"exported policy          {export}",
    ]
    print("\n".join(lines), flush=True)


def voting_lines(metrics: dict[str, float]) -> list[str]:
    found = {k.split("/")[1]: v for k, v in metrics.items() if k.startswith("final/") and "@" in k}
    if not found:
        return []
    order = ["pass@1", "majority", "weighted_majority", "best_of_k", "pass@k"]
    names = [m for m in order if any(k.startswith(m + "@") for k in found)]
    k = next(iter(found)).split("@")[-1]
    pooled, within, difficulty = (
        metrics.get(f"final/self_verify/{m}", float("nan")) for m in RANKING_METRICS
    )
    return [
        f"held-out voting at k={k}: " + ", ".join(f"{m} {found[f'{m}@{k}']:.4f}" for m in names),
        f"self-reward AUROC on those samples: pooled {pooled:.4f}, within each prompt {within:.4f} "
        f"(knowing only each prompt's difficulty gives >= {difficulty:.4f} pooled, 0.5 within)",
    ]


def get_metric_value(
    metrics: dict[str, float], name: str | Sequence[str] | None
) -> float | list[float] | None:
    """The metric a sweeper optimises (a list of them for a multi-objective sweep); a clear error
    when the run did not log one."""
    if not name:
        return None
    if not isinstance(name, str):
        return [get_metric_value(metrics, n) for n in name]
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} was not logged; logged: {sorted(metrics)}")
    return metrics[name]


# what Lightning's launcher sets in the launching process's environment
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def other_ranks_run_this_job() -> Iterator[None]:
    """Lightning starts the other ranks of a multi-process strategy (trainer=ddp) by re-running this
    process's command line with `hydra.run.dir` set to Hydra's run.dir. In a multirun that command
    line is the whole sweep: point it at this job alone, its overrides and its output directory,
    and at `python -m laser.run` also in a launcher's worker process (joblib, submitit), whose own
    main module is the launcher's.
    Afterwards, undo what the job's ranks leave in this process (the next job of a sequential
    multirun starts its own): the process group, and the environment variables that would make
    Lightning think its ranks had been started by a cluster."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        yield
        return
    hc = HydraConfig.get()
    argv, run_dir, environ = sys.argv, hc.run.dir, dict(os.environ)
    main_module = sys.modules["__main__"]
    main_spec = main_module.__spec__
    sys.argv = [argv[0], *hc.overrides.task]
    main_module.__spec__ = importlib.util.find_spec("laser.run")  # Lightning runs `-m <its name>`
    with read_write(hc):
        hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        sys.argv, main_module.__spec__ = argv, main_spec
        with read_write(hc):
            hc.run.dir = run_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key in LAUNCH_ENV:
            if key in environ:
                os.environ[key] = environ[key]
            else:
                os.environ.pop(key, None)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | list[float] | None:
    try:
        with other_ranks_run_this_job():
            metrics, _ = train(cfg)
    finally:  # close the W&B run even when training fails, so multiruns do not inherit it
        import wandb

        if wandb.run is not None:
            wandb.finish()
    return get_metric_value(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
