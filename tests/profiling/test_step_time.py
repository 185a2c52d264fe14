"""Tests for laser.profiling.step_time: steps from the base policy pair up across algorithms."""

from types import SimpleNamespace

import torch

from laser.assembly import check_self_reward
from laser.configs import validate
from laser.data.arithmetic import arithmetic_dataset
from laser.data.datamodule import PromptDataModule
from laser.models.loading import load_tokenizer
from laser.profiling.step_time import FromBase, benchmark_algos, compare

from helpers import compose_train, finishing_policy


def test_from_base_puts_weights_and_optimiser_state_back() -> None:
    policy = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(policy.parameters(), lr=0.1)
    module = SimpleNamespace(policy=policy)
    logged = {"train/tokens/response": torch.tensor(10.0)}  # what the step logged
    trainer = SimpleNamespace(optimizers=[opt], callback_metrics=logged)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    reset = FromBase()
    reset.on_train_start(trainer, module)
    policy(torch.ones(4, 3)).sum().backward()
    opt.step()
    assert not torch.equal(policy.weight, before["weight"]) and opt.state
    reset.on_train_batch_end(trainer, module)
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in before.items())
    assert not opt.state and reset.tokens == [10]


def test_steps_from_the_base_sample_the_same_responses_for_both_algorithms(tmp_path) -> None:
    run = validate(compose_train(tmp_path, ["model.base_sft.steps=0", "optim.lr=0.05"]))
    tok = load_tokenizer(run.model.name_or_path)
    token_id = check_self_reward(run, tok)
    data = arithmetic_dataset(train_size=64, eval_size=8)
    datamodule = PromptDataModule(lambda: data, tok, run.data.batch_size, run.data.eval_batch_size)
    datamodule.setup()
    setup = (run, benchmark_algos(run), finishing_policy(tok), tok, datamodule, token_id)
    result = compare(setup, rounds=2, steps=4, from_base=True)
    assert (
        len(result["times"]["laser"]) == len(result["times"]["grpo"]) == 6
    )  # first step of a round left out
    assert result["tokens"]["laser"] == result["tokens"]["grpo"]
    assert len(set(result["tokens"]["laser"])) > 1  # the steps saw different prompts
