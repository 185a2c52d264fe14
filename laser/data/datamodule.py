"""LightningDataModule of prompts: training batches, the held-out eval split, calibration prompts."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from datasets import DatasetDict
from lightning import LightningDataModule
from torch.utils.data import DataLoader

from laser.data.collate import PromptBatch, PromptCollator


class PromptDataModule(LightningDataModule):
    """Prompts and reference answers only; generation happens in the LightningModule.

    Args:
        make_dataset: returns a DatasetDict with `train` and `eval` splits (columns prompt, answer).
        tokenizer: tokenises prompts (left-padded for generation).
        batch_size: prompts per training step (of each rank under data parallelism).
        eval_batch_size: prompts per validation batch.
        seed: seeds the training shuffle (under DDP/FSDP Lightning shards the prompts with a
            DistributedSampler instead, seeded by the global seed).
    """

    def __init__(
        self,
        make_dataset: Callable[[], DatasetDict],
        tokenizer,
        batch_size: int,
        eval_batch_size: int,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.make_dataset = make_dataset
        self.collate = PromptCollator(tokenizer)
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.splits: dict[str, list[dict]] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            data = self.make_dataset()
            self.splits = {name: data[name].to_list() for name in ("train", "eval")}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.splits["train"],
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["eval"], batch_size=self.eval_batch_size, collate_fn=self.collate)

    def sample_prompts(self, n: int, rank: int = 0, world_size: int = 1) -> PromptBatch:
        """`n` training prompts drawn with the module's seed (e.g. to estimate c_ref); with several
        data-parallel ranks, rank `rank`'s share of them (every `world_size`-th)."""
        self.setup()
        train = self.splits["train"]
        picked = random.Random(self.seed).sample(range(len(train)), min(n, len(train)))
        if len(picked) < world_size:
            raise ValueError(
                f"{len(picked)} prompts cannot be shared by {world_size} ranks: ask for at least one per "
                "rank (e.g. raise algo.self_reward.c_ref_samples)"
            )
        return self.collate([train[i] for i in picked[rank::world_size]])

    def transfer_batch_to_device(self, batch: PromptBatch, device, dataloader_idx: int):
        batch.prompt_ids, batch.prompt_mask = (
            batch.prompt_ids.to(device),
            batch.prompt_mask.to(device),
        )
        return batch
