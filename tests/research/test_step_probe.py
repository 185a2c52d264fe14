"""laser.research.step_probe: steps along fixed directions, each from the same weights."""

from __future__ import annotations

import json

import pytest
import torch

from laser.research import step_probe


def test_unit_scales_to_norm_one_and_gives_none_for_no_signal():
    d = step_probe.unit([torch.tensor([3.0]), torch.tensor([[4.0]])])
    assert [x.item() for x in d] == pytest.approx([0.6, 0.8])
    assert step_probe.unit([torch.zeros(2), torch.zeros(1)]) is None


def test_probe_steps_from_the_same_weights_and_restores_them():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    directions = {"a": [torch.tensor([[1.0, 0.0]])], "skipped": None}
    results = step_probe.probe(model, directions, [0.5, 2.0], lambda: model.weight.sum().item())
    assert results == {"start": 3.0, "a@0.5": 3.5, "a@2.0": 5.0}  # not 3.5 then 5.5: no drift
    torch.testing.assert_close(model.weight, torch.tensor([[1.0, 2.0]]))


def test_main_prints_a_row_per_direction_and_writes_them(capsys, tmp_path):
    out = tmp_path / "probe.json"
    argv = ["--batches", "2", "--eval-prompts", "8", "--json", str(out), "debug=fast",
            f"paths.cache_dir={tmp_path}", "--norms", "0.05"]  # fmt: skip
    results = step_probe.main(argv)
    assert json.loads(out.read_text())["results"] == results
    out = capsys.readouterr().out
    for name in ("policy gradient", "reverse", "random", "supervised"):
        assert name in out
    assert "random@0.05" in results
    # accuracies over the 8 held-out prompts: whole eighths
    assert all(abs(8 * v - round(8 * v)) < 1e-9 for v in results.values())
