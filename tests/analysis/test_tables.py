"""Results tables are made from run files: the committed ones are what their runs give."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analysis import tables

ROOT = Path(__file__).resolve().parents[2]


def run(algo: str, seed: int, **numbers) -> dict:
    base = {"algo": algo, "seed": seed, "k": 8, "id": f"sweep_{seed}", "commit": "abc1234", "threads": 1}
    base["overrides"] = ["+experiment=showcase", f"algo={algo}", f"seed={seed}"]
    base["launcher"] = "local"
    keys = ("base", "final", "last3", "greedy", "f1", "auroc", "within", *tables.VOTES)
    return base | dict.fromkeys(keys, 0.5) | numbers


def test_the_multirun_command_is_rebuilt_from_the_runs_overrides() -> None:
    runs = [run(a, s) for a in ("grpo", "laser") for s in (0, 1, 2)]
    assert tables.multirun_command(runs) == (
        "python -m laser.run -m hydra/launcher=local +experiment=showcase algo=grpo,laser seed=0,1,2"
    )


def test_mean_and_sample_sd_by_hand() -> None:
    assert tables.mean_sd([0.7, 0.8, 0.9]) == "0.8000 ± 0.1000"  # sd with n - 1: sqrt(0.02 / 2)
    assert tables.mean_sd([float("nan")]) == "–"
    assert tables.mean_sd([0.5]) == "0.5000 ± nan"


def test_seeds_table_has_one_row_per_algorithm_grpo_first() -> None:
    runs = [run("laser", 0, majority=0.70, weighted_majority=0.78), run("laser", 1), run("grpo", 0)]
    text = tables.seeds_table(runs)
    rows = [line for line in text.splitlines() if line.startswith("| GRPO") or line.startswith("| LaSeR")]
    assert [r.split(" | ")[0] for r in rows] == ["| GRPO (0)", "| LaSeR (0, 1)"]
    assert "+4.0 ± 5.7" in rows[1]  # weighted − majority: +8 and 0 points


def test_readme_table_goes_between_its_markers_and_nowhere_else() -> None:
    text = "a\n<!-- table:x -->\nold\n<!-- /table:x -->\nb\n"
    assert tables.readme_with(text, "new\n", "x") == "a\n<!-- table:x -->\nnew\n<!-- /table:x -->\nb\n"
    with pytest.raises(ValueError, match="markers"):
        tables.readme_with("no markers", "t", "x")


def test_read_run_takes_its_numbers_from_the_run_files(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"summary/accuracy": 0.7, "final/pass@1@8": 0.6}))
    info = {"hydra": {"overrides": ["seed=3"], "launcher": "basic"}, "torch_threads": 1}
    (tmp_path / "run_info.json").write_text(json.dumps(info))
    config = "seed: 3\nalgo: {name: laser, group_size: 8}\ndata: {batch_size: 4}\nfinal_eval: {samples: 8}\n"
    (tmp_path / "config.yaml").write_text(config)
    metrics = "step,val/accuracy,train/timing_s/step\n0,0.25,\n10,,1.5\n20,,2.5\n100,0.5,\n"
    (tmp_path / "metrics.csv").write_text(metrics)
    got = tables.read_run(tmp_path)
    assert (got["base"], got["final"], got["last3"], got["pass@1"], got["seed"]) == (0.25, 0.5, 0.7, 0.6, 3)
    assert (got["step_s"], got["samples_per_step"]) == (2.0, 32.0)  # no dynamic sampling: 4 prompts x 8


def test_committed_tables_are_what_their_runs_give() -> None:
    assert tables.main(["check"]) == 0, "run `python -m analysis.tables` and commit the tables"


def test_readme_links_point_to_files_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?!https?://)[^)#]+)", text)
    assert targets, "README links to its docs"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_baselines_table_orders_each_baseline_before_laser_on_it_and_checks_each_pair() -> None:
    from analysis.baseline_tables import baselines_checks, baselines_table

    extra = {"step_s": 2.0, "samples_per_step": 64.0, "grad_norm": 1.0}
    runs = [run("dapo_laser", 0, last3=0.60, f1=0.70, auroc=0.80, **extra),
            run("dapo", 0, last3=0.63, **extra), run("laser", 0, f1=0.60, auroc=0.70, **extra),
            run("grpo", 0, last3=0.49, **extra)]  # fmt: skip
    rows = [line.split(" | ")[0] for line in baselines_table(runs).splitlines()[2:]]
    assert rows == ["| GRPO (0)", "| GRPO + LaSeR (0)", "| DAPO (0)", "| DAPO + LaSeR (0)"]
    checks = baselines_checks(runs)
    assert "| GRPO + LaSeR − GRPO: accuracy, last 3 | +1.0 pts | ≥ -2 pts | met |" in checks
    assert "| DAPO + LaSeR − DAPO: accuracy, last 3 | -3.0 pts | ≥ -2 pts | **missed** |" in checks
    # the bar is the same sweep's LaSeR on GRPO, which is not held to itself
    assert "| DAPO + LaSeR: F1, last 3 | 0.7000 | ≥ 0.6000 (GRPO + LaSeR) | met |" in checks
    assert "| DAPO + LaSeR: pooled AUROC, last 3 | 0.8000 | ≥ 0.7000 (GRPO + LaSeR) | met |" in checks
    assert "GRPO + LaSeR: F1" not in checks
    assert "| Dr. GRPO + LaSeR | – |  | no runs |" in checks
    two_seeds = [*runs, run("dapo_laser", 1, last3=0.7), run("dapo", 1, last3=0.6)]
    row = "| DAPO + LaSeR − DAPO: accuracy, last 3 | +3.5 pts (per seed: -3.0, +10.0) | ≥ -2 pts | met |"
    assert row in baselines_checks(two_seeds)
    # a seed only the baseline ran does not enter the gap: (-3.0 + 10.0) / 2, not 0.65 - 0.70
    unpaired = [*two_seeds, run("dapo", 2, last3=0.9)]
    assert "| DAPO + LaSeR − DAPO: accuracy, last 3 | +3.5 pts" in baselines_checks(unpaired)


def test_a_named_variant_of_a_laser_preset_is_its_own_arm_after_the_preset() -> None:
    from analysis.baseline_tables import arm_name, baselines_checks, baselines_table

    extra = {"step_s": 2.0, "samples_per_step": 64.0, "grad_norm": 1.0}
    arms = (("dr_grpo_laser_alpha0.125", 0.71), ("dr_grpo", 0.72), ("dr_grpo_laser", 0.6), ("laser", 0.5))
    runs = [run(a, 0, last3=acc, **extra) for a, acc in arms]
    assert arm_name("dr_grpo_laser_alpha0.125") == "Dr. GRPO + LaSeR, alpha0.125"
    assert arm_name("gspo_variant") == "gspo_variant"  # a baseline's variant is not LaSeR's
    rows = [line.split(" | ")[0] for line in baselines_table(runs).splitlines()[2:]]
    assert rows == ["| GRPO + LaSeR (0)", "| Dr. GRPO (0)", "| Dr. GRPO + LaSeR (0)",
                    "| Dr. GRPO + LaSeR, alpha0.125 (0)"]  # fmt: skip
    checks = baselines_checks(runs)
    assert (
        "| Dr. GRPO + LaSeR, alpha0.125 − Dr. GRPO: accuracy, last 3 | -1.0 pts | ≥ -2 pts | met |" in checks
    )


def test_dynamic_sampling_table_tells_the_kept_groups_arm_apart() -> None:
    from analysis.baseline_tables import dynamic_sampling_table

    extra = {"step_s": 2.0, "dropped_frac": 0.25}
    runs = [run("dapo_laser", 0, keep_for_mse=True, samples_per_step=90.0, **extra),
            run("dapo_laser", 0, keep_for_mse=False, samples_per_step=80.0, **extra),
            run("dapo", 0, keep_for_mse=False, weighted_majority=0.6, majority=0.5, best_of_k=0.4,
                **{"pass@1": 0.5}, samples_per_step=70.0, **extra)]  # fmt: skip
    rows = [line.split(" | ") for line in dynamic_sampling_table(runs).splitlines()[2:]]
    assert [r[0] for r in rows] == [
        "| DAPO (0)",
        "| DAPO + LaSeR (0)",
        "| DAPO + LaSeR, dropped groups kept for the MSE (0)",
    ]
    assert rows[0][5:8] == ["+10.0 ± –", "-10.0 ± –", "70.0 ± –"]  # points, one seed: no sd


def test_the_footer_gives_one_command_per_sweep() -> None:
    runs = [run("grpo", 0) | {"id": "a_0"}, run("dapo", 0) | {"id": "b_0", "overrides": ["algo=dapo"]}]
    assert tables.commands(runs) == (
        "`python -m laser.run -m hydra/launcher=local +experiment=showcase algo=grpo seed=0` and "
        "`python -m laser.run -m hydra/launcher=local algo=dapo`"
    )
