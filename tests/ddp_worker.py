"""One validation and one LaSeR optimiser step on a fixed prompt set, on one process or under
Lightning's DDP (used by tests/test_ddp.py).

`python tests/ddp_worker.py OUT --devices 2` starts rank 0; Lightning's launcher re-runs the script
for rank 1. Each rank writes OUT/rank{r}.pt: the policy's parameters and gradients after the step,
the logged metrics, the validation metrics and its own share of the step's counts.

The completions of a prompt are a function of its text only (sampled with a seed derived from it),
and the rewards a function of the completion, so one process with all prompts and two ranks with
half of them each train on the same rollouts.
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import lightning as L
import torch
from datasets import Dataset, DatasetDict

from laser.data.collate import PromptCollator
from laser.data.datamodule import PromptDataModule
from laser.lit.module import LaserModule
from laser.models.char_tokenizer import build_char_tokenizer
from laser.rollout.sampler import Sampler
from laser.rollout.types import Rollout

from helpers import LastStep, config_block, finishing_policy

PROMPTS_PER_RANK = 4
WORLD_SIZE = 2
GRAD_CLIP = 0.05
TRAIN_PROMPTS = [f"{a}+{b}=" for a, b in [(3, 4), (12, 7), (5, 60), (8, 1), (40, 2), (9, 9), (1, 23), (6, 5)]]
EVAL_PROMPTS = ["2+2=", "7+30=", "11+4=", "5+5=", "61+8="]  # odd: the DistributedSampler repeats one
assert len(TRAIN_PROMPTS) == PROMPTS_PER_RANK * WORLD_SIZE


class PromptSeededSampler(Sampler):
    """Sampler whose completions of a prompt depend on the prompt's text only, not on the batch it
    comes in, the rank or earlier draws."""

    def sample(self, model, batch, group_size: int = 1, score: bool = True) -> Rollout:
        collate = PromptCollator(self.tokenizer)
        parts = []
        for prompt, answer in zip(batch.prompts, batch.answers, strict=True):
            self.generator.manual_seed(zlib.crc32(prompt.encode()))
            single = collate([{"prompt": prompt, "answer": answer}])
            parts.append(super().sample(model, single, group_size, score))
        return Rollout.cat(parts, self.tokenizer.pad_token_id)


def length_parity_verifier(texts: list[str], answers: list[str], prompts: list[str]) -> torch.Tensor:
    """Reward 1 for responses of even length: a mix of both classes from a random policy."""
    return torch.tensor([float(len(t) % 2 == 0) for t in texts])


def records(prompts: list[str]) -> Dataset:
    return Dataset.from_list([{"prompt": p, "answer": "unused"} for p in prompts])


def build(devices: int) -> tuple[LaserModule, PromptDataModule]:
    tok = build_char_tokenizer()
    policy = finishing_policy(tok)
    z = tok.convert_tokens_to_ids("<reserved_0>")
    sampler = PromptSeededSampler(tok, max_new_tokens=12, self_reward_id=z, seed=0)
    algo = config_block(
        "algo",
        group_size=4,
        micro_batch_size=3,  # several micro-batches per step, the last one partial
        # c_ref puts the scores near the 0.5 threshold (both predictions occur); every group mixes
        self_reward={
            "alpha": 0.5, "beta_v": 0.1, "c_ref": -9.53, "tau": 0.5, "filter_threshold": 0.0,
            "self_reward_warmup_steps": 0, "max_target_logprob": 1e9,
        },
    )  # fmt: skip
    optim = config_block("optim", lr=1e-3, warmup_steps=0, grad_clip=GRAD_CLIP)
    module = LaserModule(policy, sampler, sampler, length_parity_verifier, algo, optim, z)
    data = DatasetDict(train=records(TRAIN_PROMPTS), eval=records(EVAL_PROMPTS))
    batch_size = len(TRAIN_PROMPTS) // devices  # one step over all prompts
    datamodule = PromptDataModule(lambda: data, tok, batch_size=batch_size, eval_batch_size=2)
    return module, datamodule


def run(out: Path, devices: int) -> None:
    """Validate, take one optimiser step, and write this rank's results to out/rank{r}.pt."""
    module, datamodule = build(devices)
    last = LastStep()  # the step's StepRecord
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", max_steps=1,
        check_val_every_n_epoch=None, val_check_interval=100, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=out, callbacks=[last],
    )  # fmt: skip
    trainer.validate(module, datamodule=datamodule, verbose=False)
    trainer.fit(module, datamodule=datamodule)
    rollout, rewards = last.record.rollout, last.record.rewards
    finished = rollout.finished
    result = {
        "params": {n: p.detach().clone() for n, p in module.policy.named_parameters()},
        "grads": {n: p.grad.detach().clone() for n, p in module.policy.named_parameters()},
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")},
        "val": module.val_history[0],
        "prompts": last.record.batch.prompts,
        "num_tokens": int(rollout.response_mask.sum()),
        "num_correct": int((finished & (rewards > 0.5)).sum()),
        "num_incorrect": int((finished & (rewards <= 0.5)).sum()),
    }
    torch.save(result, out / f"rank{trainer.global_rank}.pt")
    trainer.strategy.barrier()  # rank 0 exits (ending the launch) only once every rank has written


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=WORLD_SIZE)
    args = parser.parse_args()
    torch.set_num_threads(1)
    run(args.out, args.devices)
