"""`python -m laser.evaluate ckpt_path=...`: self-verification and inference-time scaling of a policy.

Writes to the run directory: `scaling.csv` (one row per problem x k x method), `scaling_summary.csv`
(mean accuracy per method and k), `self_verify.json` and `problems.jsonl` (answers, votes, scores,
confidences, response texts); and the comparison of test-time confidences on the same samples
(docs/confidence.md): `confidence.csv`, `confidence_scaling.csv`, `adaptive.csv` and
`accuracy_estimate.csv`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from functools import partial
from pathlib import Path

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import AutoModelForCausalLM

from laser.assembly import export_checkpoint, make_sampler
from laser.catalog import BENCHMARKS, check_data_file
from laser.configs import ArithmeticTaskConfig, RewardConfig, register_schemas
from laser.data.arithmetic import arithmetic_dataset
from laser.data.collate import PromptCollator
from laser.eval.compare import LabelledSamples, confidence_tables, read_labelled
from laser.eval.confidence import METHODS, ScoringContext, applicable
from laser.eval.costs import generation_costs
from laser.eval.report import (
    by_written_check,
    per_problem,
    powers_of_two,
    scaling_table,
    self_verification,
    summarise_scaling,
)
from laser.eval.samples import ScoredSamples, sample_scored
from laser.eval.settings import ConfidenceConfig, confidence_config
from laser.models.loading import check_model_source, load_tokenizer, stop_token_ids
from laser.rewards import make_verifier
from laser.rewards.arithmetic import check_agrees
from laser.rewards.verifier import Verifier
from laser.rollout.sampler import Sampler
from laser.rollout.tokens import resolve_single_token
from laser.utils.loggers import make_wandb_logger
from laser.utils.provenance import write_run_info

log = logging.getLogger(__name__)
register_schemas()


def resolve_policy(ckpt_path: str) -> tuple[str, Path | None]:
    """(model folder or Hub id, training run directory or None) for a run dir, one of its
    checkpoints (`<run>/checkpoints/*.ckpt`), an exported policy or a Hub id."""
    path = Path(ckpt_path).expanduser()
    if path.suffix == ".ckpt" and path.is_file():  # a training checkpoint: an earlier policy of a run
        run_dir = path.parent.parent
        return str(export_checkpoint(path)), run_dir if (run_dir / "config.yaml").exists() else None
    if (path / "policy" / "config.json").exists():
        return str(path / "policy"), path
    check_model_source(ckpt_path)
    if path.exists() and not (path / "config.json").exists():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path!r} holds no config.json nor policy/config.json: give a training "
            "run directory, an exported policy folder (save_pretrained) or a Hub id"
        )
    run_dir = path.parent if (path.parent / "config.yaml").exists() else None
    return ckpt_path, run_dir


def self_reward_settings(cfg: DictConfig, model_dir: str) -> dict:
    """Token, beta_v, c_ref, threshold, the verification loss (which defines the score) and its
    second token: the config's where given, else the policy's own file."""
    saved_path = Path(model_dir) / "self_reward.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    settings = {k: v if v is not None else saved.get(k) for k, v in cfg.self_reward.items()}
    settings["loss"] = settings.get("loss") or "mse"  # exports made before the SFT loss existed
    missing = [k for k in ("token", "beta_v", "c_ref") if settings[k] is None]
    if missing:
        raise ValueError(
            f"self_reward.{missing[0]} is not set and {saved_path} has none: pass "
            + " ".join(f"self_reward.{k}=..." for k in missing)
        )
    return settings


def check_settings(cfg: DictConfig) -> None:
    """The evaluation's own settings, checked before any model loads or sample is drawn."""
    for key in ("num_samples", "num_resamples", "batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"{key}={cfg[key]!r} is invalid: give a whole number >= 1")
    limit = cfg.max_problems
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"max_problems={limit!r} is invalid: give a whole number >= 1, or null for all")
    if cfg.split not in ("eval", "train"):
        raise ValueError(f"split={cfg.split!r} is invalid: use eval (held out) or train")
    name = str(cfg.benchmark)
    if name != "arithmetic" and name.lower() not in BENCHMARKS and Path(name).suffix:
        check_data_file(name, "benchmark")  # exists, has a supported format and holds rows


def load_records(cfg: DictConfig, tokenizer, task: ArithmeticTaskConfig) -> list[dict]:
    """Prompt/answer records of the chosen benchmark (at most `max_problems`); `task`: the
    arithmetic task's settings, for benchmark=arithmetic."""
    if cfg.benchmark == "arithmetic":
        records = arithmetic_dataset(**asdict(task))[cfg.split].to_list()
    else:
        from laser.data.benchmarks import load_benchmark

        fields = {k: cfg[k] for k in ("problem_field", "answer_field") if cfg[k]}
        try:
            records = load_benchmark(cfg.benchmark, tokenizer, root=cfg.benchmark_root, **fields).to_list()
        except ValueError as err:
            raise ValueError(f"benchmark={cfg.benchmark!r}: {err}") from None
    if not records:
        raise ValueError(f"benchmark={cfg.benchmark!r} holds no problems; give one with at least one")
    if cfg.max_problems is not None and cfg.max_problems > len(records):
        log.warning(
            "max_problems=%d exceeds the %d problems of benchmark=%s: evaluating all %d",
            cfg.max_problems, len(records), cfg.benchmark, len(records),
        )  # fmt: skip
    return records[: cfg.max_problems] if cfg.max_problems else records


def run_task(run_dir: Path | None) -> ArithmeticTaskConfig:
    """The arithmetic task the run at `run_dir` trained on (the default task without a run)."""
    return ArithmeticTaskConfig(**run_value(run_dir, "data.task", {}))


def run_value(run_dir: Path | None, key: str, default):
    """A setting of the run at `run_dir` (`default` without a run or where the run lacks it)."""
    if run_dir is None:
        return default
    return OmegaConf.select(OmegaConf.load(run_dir / "config.yaml"), key, default=default)


def response_budget(cfg: DictConfig, run_dir: Path | None) -> int:
    """Tokens per response: on the run's own task at least the run's budget, since a shorter one
    would cut its solutions off and score them wrong."""
    asked = cfg.rollout.max_new_tokens
    if cfg.benchmark != "arithmetic":
        return asked
    trained = run_value(run_dir, "rollout.max_new_tokens", asked)
    if trained > asked:
        log.info("rollout.max_new_tokens=%d is below the run's %d: using the run's", asked, trained)
    return max(asked, trained)


def run_scores_check(run_dir: Path | None) -> bool:
    """Whether the run at `run_dir` scored its written check (`reward.score_check`; runs made
    before the rename saved `reward.check: scored`)."""
    scored = run_value(run_dir, "reward.score_check", None)
    if scored is None:
        return run_value(run_dir, "reward.check", "unscored") == "scored"
    return bool(scored)


def make_eval_verifier(cfg: DictConfig, task: ArithmeticTaskConfig, score_check: bool = False):
    """The arithmetic task's step-checking verifier (the steps and the answer; a self-check too
    with `score_check`, as in the run that trained with it), math-verify otherwise."""
    if cfg.benchmark != "arithmetic":
        return Verifier()
    return make_verifier(RewardConfig(kind="arithmetic_steps", score_check=score_check), task)


def write_outputs(out: Path, table: pd.DataFrame, summary: pd.DataFrame, verify: dict, samples) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "scaling.csv", index=False)
    summary.to_csv(out / "scaling_summary.csv")
    (out / "self_verify.json").write_text(json.dumps(verify, indent=2))
    per_problem(samples).to_json(out / "problems.jsonl", orient="records", lines=True)


def log_to_wandb(
    cfg: DictConfig, summary: pd.DataFrame, verify: dict, out: Path, compared: dict | None = None
) -> None:
    logger = make_wandb_logger(
        cfg.wandb.mode, cfg.wandb.project, str(out), group="eval", name=str(cfg.benchmark)
    )
    if logger is None:
        return
    metrics = {f"eval/{m}@{k}": float(v) for m, row in summary.iterrows() for k, v in row.items()}
    metrics |= {f"eval/{k}": v for k, v in verify.items() if v is not None}  # None: not applicable
    if compared:
        ranking = compared["confidence"]
        metrics |= {
            f"eval/confidence/{method}/{name}": float(v)
            for method, row in ranking.iterrows()
            for name, v in row.items()
        }
    logger.log_metrics(metrics)
    table = summary.reset_index()
    table.columns = [str(c) for c in table.columns]  # W&B tables need str column names, not k
    logger.log_table("eval/scaling", dataframe=table)
    logger.experiment.finish()


def load_policy_and_sampler(
    cfg: DictConfig, model_dir: str, tokenizer, settings: dict, max_new_tokens: int
) -> tuple[torch.nn.Module, Sampler]:
    """The policy (on the GPU when there is one) and its sampler at `rollout.eval_temperature`,
    the self-reward token never sampled (nor the SFT loss's second verdict token, as in training)."""
    token_id = resolve_single_token(tokenizer, settings["token"], "self_reward.token")
    incorrect = settings.get("incorrect_token")
    incorrect_id = (
        resolve_single_token(tokenizer, incorrect, "self_reward.incorrect_token") if incorrect else None
    )
    policy = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    if torch.cuda.is_available():
        policy = policy.cuda()
    ro = OmegaConf.to_object(cfg.rollout)
    ro.max_new_tokens = max_new_tokens
    stop_ids = stop_token_ids(tokenizer, model=policy)  # a training export lists its stop ids there
    sampler = make_sampler(ro, tokenizer, token_id, cfg.seed, ro.eval_temperature, stop_ids)
    if incorrect_id is not None:
        sampler.ban(incorrect_id)
    return policy, sampler


def task_check(task: ArithmeticTaskConfig, on_task: bool):
    """text -> whether its written check agrees with its steps, on a self-checking arithmetic task
    (`on_task`: the problems are that task's); None elsewhere."""
    if on_task and task.check != "none":
        return partial(check_agrees, kind=task.check)
    return None


def scoring_context(conf: ConfidenceConfig, settings: dict, max_new_tokens: int, check) -> ScoringContext:
    """The confidence methods' settings, DeepConf's windows in tokens of this response budget."""
    return ScoringContext(
        top_k=conf.top_k,
        group_window=conf.tokens(conf.group_window, max_new_tokens),
        tail=conf.tokens(conf.tail, max_new_tokens),
        beta_v=settings["beta_v"],
        c_ref=settings["c_ref"],
        loss=settings["loss"],
        written_check=check,
    )


def measured_costs(
    conf: ConfidenceConfig, policy, sampler: Sampler, records: list[dict], num_samples: int, names: list[str]
) -> dict[str, float] | None:
    """Seconds per sample that each recorded statistic adds to generation, on the first
    `confidence.timing.problems` problems (None when not measured); the sampler's RNG is kept."""
    if not names or conf.timing.problems == 0:
        return None
    stats = {METHODS[n].records for n in names} - {""}
    if not stats:  # the sampled tokens' log-probs are always recorded: nothing to measure
        return {}
    batch = PromptCollator(sampler.tokenizer)(records[: conf.timing.problems])
    return generation_costs(policy, sampler, batch, num_samples, stats, conf.top_k, conf.timing.repeats)


def evaluate(cfg: DictConfig) -> dict:
    """Sample, verify, score and tabulate; returns the summary numbers."""
    check_settings(cfg)
    conf = confidence_config(cfg.confidence)
    cal = conf.calibration
    source = read_labelled(cal.source, cal.problems) if conf.methods and cal.source else None
    model_dir, run_dir = resolve_policy(str(cfg.ckpt_path))
    settings = self_reward_settings(cfg, model_dir)
    tokenizer = load_tokenizer(model_dir)
    task = run_task(run_dir)
    records = load_records(cfg, tokenizer, task)
    policy, sampler = load_policy_and_sampler(
        cfg, model_dir, tokenizer, settings, response_budget(cfg, run_dir)
    )
    verifier = make_eval_verifier(cfg, task, run_scores_check(run_dir))
    check = task_check(task, cfg.benchmark == "arithmetic")
    ctx = scoring_context(conf, settings, sampler.max_new_tokens, check)
    names = applicable(conf.methods, ctx)
    generation = measured_costs(conf, policy, sampler, records, cfg.num_samples, names)
    samples = sample_scored(
        policy, sampler, verifier, records, cfg.num_samples, settings["beta_v"], settings["c_ref"],
        cfg.batch_size, loss=settings["loss"], methods=names, context=ctx,
    )  # fmt: skip
    table = scaling_table(samples, powers_of_two(cfg.num_samples), cfg.num_resamples, cfg.seed)
    summary = summarise_scaling(table)
    verify = self_verification(samples, settings["threshold"], settings["calibration_bins"])
    undefined = any(v is None for v in verify.values())
    if ctx.written_check is not None:
        verify |= by_written_check(samples, ctx.written_check, settings["threshold"])
    out = Path(cfg.paths.output_dir)
    write_outputs(out, table, summary, verify, samples)
    write_run_info(out, cfg.seed)  # what reproduces the evaluation
    print(f"{len(records)} problems x {cfg.num_samples} samples from {model_dir}")
    print(summary.to_string(float_format=lambda x: f"{x:.4f}"))
    print(" ".join(f"{k.split('/')[-1]}={'n/a' if v is None else f'{v:.4f}'}" for k, v in verify.items()))
    if undefined:
        print(f"n/a: not applicable to these samples ({not_applicable_reason(cfg, samples)})")
    compared = compare_confidences(cfg, conf, samples, names, source, generation, out)
    print(f"results in {out}")
    log_to_wandb(cfg, summary, verify, out, compared)
    return {"summary": summary, "self_verify": verify, **compared}


def compare_confidences(
    cfg: DictConfig,
    conf: ConfidenceConfig,
    samples: ScoredSamples,
    names: list[str],
    source: LabelledSamples | None,
    generation: dict[str, float] | None,
    out: Path,
) -> dict[str, pd.DataFrame]:
    """Write and print the confidence comparison's tables (none when no method is asked for)."""
    if not names:
        return {}
    bins = cfg.self_reward.calibration_bins
    tables = confidence_tables(samples, names, conf, source, generation, cfg.num_resamples, bins, cfg.seed)
    for name, frame in tables.items():
        frame.to_csv(out / f"{name}.csv", index=name == "confidence")
    shown = ["auroc/pooled", "auroc/within", "ece/calibrated", "cost/extra_ms_per_sample"]
    print("confidence methods (finished samples):")
    print(tables["confidence"][shown].to_string(float_format=lambda x: f"{x:.4f}"))
    estimate = tables["accuracy_estimate"]
    pass1 = estimate[estimate["target"] == "pass@1"]
    print("predicted pass@1 accuracy [95% bootstrap] against the true one:")
    for row in pass1.itertuples():
        print(
            f"  {row.method:<22} {row.calibration:<9} {row.predicted:.4f} "
            f"[{row.predicted_low:.4f}, {row.predicted_high:.4f}]  true {row.true:.4f}"
        )
    return tables


def not_applicable_reason(cfg: DictConfig, samples) -> str:
    """Why some self-verification metrics are undefined (see `self_verification`)."""
    reasons = []
    if cfg.num_samples < 2:
        reasons.append(f"num_samples={cfg.num_samples}: the within-problem and difficulty AUROCs need >= 2")
    done = samples.finished
    for label, mask in (("correct", done & samples.correct), ("incorrect", done & ~samples.correct)):
        if not mask.any():
            reasons.append(f"no finished {label} response: metrics needing that class are undefined")
    return "; ".join(reasons) or "no problem has both a correct and an incorrect finished response"


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
