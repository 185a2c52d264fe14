"""Bad configs fail at composition or validation, naming the key, before any model loads."""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from laser.assembly import under_current_names
from laser.configs import RewardConfig, validate
from laser.run import train

from helpers import compose_train

GROUP_CHOICES = [[], ["algo=grpo"], ["logger=csv"], ["callbacks=none"]]


@pytest.mark.parametrize("overrides", GROUP_CHOICES)
def test_config_choices_compose_and_validate(tmp_path: Path, overrides: list[str]) -> None:
    run = validate(compose_train(tmp_path, overrides, debug=None))
    assert run.algo.group_size >= 2


def test_grpo_is_laser_with_self_reward_training_off(tmp_path: Path) -> None:
    laser_cfg = validate(compose_train(tmp_path, [], debug=None)).algo
    grpo_cfg = validate(compose_train(tmp_path, ["algo=grpo"], debug=None)).algo
    assert (grpo_cfg.self_reward.alpha, grpo_cfg.self_reward.tau) == (0.0, 0.0)
    assert laser_cfg.self_reward.alpha > 0 and laser_cfg.self_reward.tau > 0
    same = {"group_size", "clip_low", "clip_high", "loss_agg", "kl_beta", "micro_batch_size"}
    assert all(getattr(grpo_cfg, k) == getattr(laser_cfg, k) for k in same)
    assert grpo_cfg.self_reward.token == laser_cfg.self_reward.token


def test_unknown_key_fails_at_composition(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException, match="betta"):
        compose_train(tmp_path, ["algo.self_reward.betta=0.2"])


def test_wrong_type_fails_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose_train(tmp_path, ["algo.self_reward.beta_v=abc"])
    assert "beta_v" in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("algo.self_reward.beta_v=-1", "algo.self_reward.beta_v"),
        ("algo.self_reward.tau=1.5", "algo.self_reward.tau"),
        ("algo.group_size=1", "algo.group_size"),
        ("algo.loss_agg=mean", "algo.loss_agg"),
        ("algo.self_reward.c_ref=banana", "algo.self_reward.c_ref"),
        ("rollout.top_p=0", "rollout.top_p"),
        ("optim.lr=0", "optim.lr"),
        ("optim.final_lr_ratio=0", "optim.final_lr_ratio"),
        ("optim.final_lr_ratio=1.5", "optim.final_lr_ratio"),
        ("data.task.ops=/", "data.task.ops"),
        ("model.tiny.num_heads=3", "model.tiny.hidden_size"),
        ("model.base_sft.seed=-1", "model.base_sft.seed"),
        ("algo.self_reward.loss=bce", "algo.self_reward.loss"),
        ("algo.self_reward.calibration_bins=0", "algo.self_reward.calibration_bins"),
        ("algo.self_reward.loss=sft", "algo.self_reward.incorrect_token"),  # no second token
        ("algo.reward_source.self_after_step=-1", "algo.reward_source.self_after_step"),
        ("algo.reward_source.self_after_step=2.5", "algo.reward_source.self_after_step"),
        ("algo.reward_source.self_after_step=soon", "algo.reward_source.self_after_step"),
        ("algo.adv_scale=batch", "algo.adv_scale"),
        ("algo.ratio_level=group", "algo.ratio_level"),
        ("algo.rollout_is_cap=0.5", "algo.rollout_is_cap"),
        ("algo.overlong.buffer_frac=1.0", "algo.overlong.buffer_frac"),
        ("algo.overlong.penalty_factor=0", "algo.overlong.penalty_factor"),
        ("algo.dynamic_sampling.max_extra_rounds=-1", "algo.dynamic_sampling.max_extra_rounds"),
        ("algo.dynamic_sampling.keep_for_mse=true", "algo.dynamic_sampling.keep_for_mse"),  # no rounds
    ],
)
def test_out_of_range_value_names_key(tmp_path: Path, override: str, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validate(compose_train(tmp_path, [override]))


def _nothing_built(tmp_path: Path) -> bool:
    return not (tmp_path / "cache").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_self_reward_token_must_be_one_token(tmp_path: Path) -> None:
    cfg = compose_train(tmp_path, ["algo.self_reward.token=ab"])
    with pytest.raises(ValueError, match=r"algo\.self_reward\.token='ab' encodes to 2 tokens"):
        train(cfg)
    assert _nothing_built(tmp_path)


def test_unset_model_path_is_named(tmp_path: Path) -> None:
    # `model=hf` leaves name_or_path as '???': the error must name it, not a later consequence
    cfg = compose_train(tmp_path, ["model=hf", "model.self_reward_token=x"])
    with pytest.raises(ValueError, match=r"model\.name_or_path is required but not set"):
        train(cfg)
    assert _nothing_built(tmp_path)


def test_missing_model_path_fails_before_anything(tmp_path: Path) -> None:
    cfg = compose_train(tmp_path, ["model=hf", f"model.name_or_path={tmp_path}/no/such/model"])
    with pytest.raises(FileNotFoundError, match=r"model\.name_or_path"):
        train(cfg)
    assert _nothing_built(tmp_path)


def test_constant_c_ref_too_high_for_beta_v_fails_before_training(tmp_path: Path) -> None:
    # target log-prob c_ref + 1/beta_v = -5 + 10 = 5 > -3: the approximation cannot hold
    sr = "algo.self_reward"
    cfg = compose_train(tmp_path, [f"{sr}.c_ref=-5", f"{sr}.beta_v=0.1", f"{sr}.max_target_logprob=-3"])
    with pytest.raises(ValueError, match="beta_v"):
        train(cfg)
    assert _nothing_built(tmp_path)


SFT = ["algo.self_reward.loss=sft", "algo.self_reward.incorrect_token='<reserved_1>'"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algo.self_reward.incorrect_token='<reserved_0>'"], r"incorrect_token='<reserved_0>'.*other than"),
        (["algo.self_reward.c_ref=reference"], r"algo\.self_reward\.c_ref='reference'.*no reference"),
    ],
)
def test_sft_loss_needs_two_tokens_and_no_reference(tmp_path: Path, overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        validate(compose_train(tmp_path, [*SFT, *overrides]))


def test_sft_second_token_must_be_one_token_before_anything_is_built(tmp_path: Path) -> None:
    cfg = compose_train(tmp_path, [*SFT, "algo.self_reward.incorrect_token=no"])
    with pytest.raises(ValueError, match=r"algo\.self_reward\.incorrect_token='no' encodes to 2 tokens"):
        train(cfg)
    assert _nothing_built(tmp_path)


def test_sft_skips_the_c_ref_check_that_only_the_mse_score_needs(tmp_path: Path) -> None:
    # c_ref + 1/beta_v = 5 breaks the E2 check, which is about the MSE's target, not the SFT loss's
    sr = "algo.self_reward"
    run = validate(compose_train(tmp_path, [*SFT, f"{sr}.c_ref=-5", f"{sr}.beta_v=0.1"]))
    assert not run.algo.self_reward.checks_c_ref
    assert validate(compose_train(tmp_path, [f"{sr}.c_ref=-5"])).algo.self_reward.checks_c_ref


def test_switch_as_a_fraction_needs_the_run_length(tmp_path: Path) -> None:
    key = "algo.reward_source.self_after_step"
    assert validate(compose_train(tmp_path, [f"{key}=0.5"])).algo.reward_source.self_after_step == 0.5
    assert validate(compose_train(tmp_path, [f"{key}=300"])).algo.reward_source.self_after_step == 300
    with pytest.raises(ValueError, match=r"trainer\.max_steps >= 1"):
        validate(compose_train(tmp_path, [f"{key}=0.5", "trainer.max_steps=-1"]))


def test_decay_needs_the_run_length(tmp_path: Path) -> None:
    assert validate(compose_train(tmp_path, ["optim.final_lr_ratio=0.1"])).optim.final_lr_ratio == 0.1
    with pytest.raises(ValueError, match=r"optim\.final_lr_ratio.*trainer\.max_steps >= 1"):
        validate(compose_train(tmp_path, ["optim.final_lr_ratio=0.1", "trainer.max_steps=-1"]))


@pytest.mark.parametrize("override", ["final_eval.samples=0", "final_eval.problems=-1"])
def test_bad_final_eval_fails_before_training(tmp_path: Path, override: str) -> None:
    with pytest.raises(ValueError, match=override.replace(".", r"\.") + " is invalid"):
        train(compose_train(tmp_path, [override]))
    assert _nothing_built(tmp_path)


BASELINES = ["grpo", "dr_grpo", "dapo", "gspo"]


@pytest.mark.parametrize("baseline", BASELINES)
def test_each_baseline_gets_laser_from_one_override(tmp_path: Path, baseline: str) -> None:
    plain = validate(compose_train(tmp_path, [f"algo={baseline}"], debug=None)).algo
    with_laser = "laser" if baseline == "grpo" else f"{baseline}_laser"
    laser = validate(compose_train(tmp_path, [f"algo={with_laser}"], debug=None)).algo
    assert (plain.name, laser.name) == (baseline, with_laser)
    assert (plain.self_reward.alpha, plain.self_reward.tau) == (0.0, 0.0)
    assert laser.self_reward.alpha > 0 and laser.self_reward.tau > 0
    # LaSeR changes the self-reward block only; `algo/self_reward=laser` does the same (keeping the name)
    strip = lambda a: {k: v for k, v in asdict(a).items() if k not in ("name", "self_reward")}  # noqa: E731
    assert strip(plain) == strip(laser)
    group = validate(compose_train(tmp_path, [f"algo={baseline}", "algo/self_reward=laser"], debug=None)).algo
    assert asdict(group) == asdict(laser) | {"name": baseline}


def test_the_baseline_presets_set_their_papers_values(tmp_path: Path) -> None:
    algo = {b: validate(compose_train(tmp_path, [f"algo={b}"], debug=None)).algo for b in BASELINES}
    assert (algo["dr_grpo"].adv_scale, algo["dr_grpo"].loss_agg) == ("none", "seq_mean_token_sum_norm")
    dapo = algo["dapo"]
    assert (dapo.clip_low, dapo.clip_high, dapo.loss_agg) == (0.2, 0.28, "token_mean")
    assert dapo.overlong.buffer_frac == 0.2 and dapo.dynamic_sampling.max_extra_rounds == 9
    gspo = algo["gspo"]
    assert (gspo.ratio_level, gspo.clip_low, gspo.clip_high) == ("sequence", 3e-4, 4e-4)
    assert (gspo.loss_agg, gspo.dual_clip) == ("seq_mean_token_mean", None)


def test_keeping_dropped_groups_for_the_mse_needs_the_mse(tmp_path: Path) -> None:
    keep = "algo.dynamic_sampling.keep_for_mse=true"
    assert validate(compose_train(tmp_path, ["algo=dapo_laser", keep])).algo.dynamic_sampling.keep_for_mse
    with pytest.raises(ValueError, match=r"algo\.dynamic_sampling\.keep_for_mse=True.*alpha"):
        validate(compose_train(tmp_path, ["algo=dapo", keep]))


# -- deprecated names ---------------------------------------------------------------------------

RENAMED = [  # (old override, new key, the value the new key takes)
    ("model.base_sft.final_lr_frac=0.05", "model.base_sft.final_lr_ratio", 0.05),
    ("reward.check=scored", "reward.score_check", True),
    ("reward.check=unscored", "reward.score_check", False),
]


@pytest.mark.parametrize(("override", "new_key", "value"), RENAMED)
def test_a_deprecated_key_still_works_and_names_its_new_key(tmp_path: Path, caplog, override, new_key, value):
    extra = ["+experiment=check_split"] if override.startswith("reward.") else []
    cfg = compose_train(tmp_path, [*extra, override])
    old_key = override.split("=")[0]
    with pytest.warns(DeprecationWarning, match=f"{old_key} is deprecated.*use {new_key}"):
        run = validate(cfg)
    assert functools.reduce(getattr, new_key.split("."), run) == value
    assert f"use {new_key}" in caplog.text  # logged too: a DeprecationWarning is hidden by default
    # the config (saved as the run's config.yaml) holds the new key only
    assert OmegaConf.select(cfg, new_key) == value and OmegaConf.select(cfg, old_key) is None


def test_a_deprecated_key_in_python_moves_to_its_new_name() -> None:
    with pytest.warns(DeprecationWarning, match=r"reward\.check is deprecated.*reward\.score_check"):
        reward = RewardConfig(kind="arithmetic_steps", check="scored")
    assert reward.score_check is True and reward.check is None
    with pytest.raises(ValueError, match=r"reward\.check='maybe' is invalid.*reward\.score_check=true"):
        RewardConfig(kind="arithmetic_steps", check="maybe")


def test_a_checkpoint_written_under_a_deprecated_key_resumes() -> None:
    old = {"model": {"base_sft": {"final_lr_frac": 1.0}}, "reward": {"check": "unscored"}}
    new = {"model": {"base_sft": {"final_lr_ratio": 1.0, "final_lr_frac": None}}}
    new["reward"] = {"score_check": False, "check": None}
    assert under_current_names(old) == new == under_current_names(new)
