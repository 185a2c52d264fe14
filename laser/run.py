"""Entry point: `python -m laser.run [overrides]` trains LaSeR (or `algo=grpo`) as configured in conf/."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from laser.assembly import (
    build_module,
    check_resume,
    export_policy,
    gather_sharded_weights,
    load_inputs,
    make_trainer,
)
from laser.configs import register_schemas, validate
from laser.eval.final import check_final_eval, final_voting_eval, print_summary, write_summary
from laser.utils.loggers import fill_wandb_identity, log_run_config
from laser.utils.multirun import other_ranks_run_this_job
from laser.utils.provenance import write_run_info
from laser.utils.threads import configure_threads

log = logging.getLogger(__name__)
register_schemas()


def train(cfg: DictConfig) -> tuple[dict[str, float], dict]:
    """Validate the config, build everything, fit, export; returns (final metrics, objects)."""
    run = validate(cfg)
    check_final_eval(cfg)
    check_resume(cfg)
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
    write_summary(out, metrics)
    print_summary(run, metrics, out, export)
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule}


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
