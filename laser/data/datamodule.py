"""LightningDataModule of prompts: training batches, the held-out eval split, calibration prompts."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator

import torch
from datasets import DatasetDict
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Sampler

from laser.data.collate import PromptBatch, PromptCollator


class EpochOrder(Sampler[int]):
    """The row order of `DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed))`,
    epoch after epoch, that can restart within an epoch.

    Each epoch's permutation is replayed from the seed: per epoch the loader draws one int64 (its
    workers' base seed) from that generator and RandomSampler two permutations (the order, and the
    empty remainder once the order is exhausted). `resume_at(epoch, rows_done)` makes that epoch's
    pass start after its first `rows_done` rows.
    """

    def __init__(self, num_rows: int, seed: int) -> None:
        self.num_rows, self.seed = num_rows, seed
        self.epoch = 0  # of the next pass
        self.serving = 0  # the epoch of the pass under way
        self.resume: tuple[int, int] | None = None  # (epoch, rows to skip in it)

    def __len__(self) -> int:
        return self.num_rows

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch's start (with the epoch restored on resume)."""
        self.epoch = epoch

    def resume_at(self, epoch: int, rows_done: int) -> None:
        self.resume = (epoch, rows_done)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch + 1):
            torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader's base seed
            order = torch.randperm(self.num_rows, generator=generator).tolist()
            torch.randperm(self.num_rows, generator=generator)  # RandomSampler's remainder draw
        skip = 0
        if self.resume is not None and self.resume[0] == self.epoch:
            skip, self.resume = self.resume[1], None
        self.serving = self.epoch
        self.epoch += 1  # the next pass is the next epoch (unless Lightning sets it)
        yield from order[skip:]


class ExtraPrompts:
    """An endless shuffled stream of training rows apart from the training loader's order: the extra
    prompts that DAPO's dynamic sampling draws when too few of a step's groups vary. Each
    data-parallel rank shuffles its own way; every rank takes as many rows, so one position (the
    epoch, and the rows taken in it) restores them all.
    """

    def __init__(self, num_rows: int, seed: int, rank: int = 0) -> None:
        self.num_rows, self.seed, self.rank = num_rows, seed, rank
        self.epoch, self.taken = 0, 0

    def order(self, epoch: int) -> list[int]:
        # a string seed is hashed with SHA-512: the same order in every process and Python version
        rng = random.Random(f"extra-prompts/{self.seed}/{self.rank}/{epoch}")
        return rng.sample(range(self.num_rows), self.num_rows)

    def take(self, n: int) -> list[int]:
        """The next `n` row indices, continuing into the next epoch's order where one runs out."""
        rows: list[int] = []
        while len(rows) < n:
            if self.taken == self.num_rows:
                self.epoch, self.taken = self.epoch + 1, 0
            part = self.order(self.epoch)[self.taken : self.taken + n - len(rows)]
            rows += part
            self.taken += len(part)
        return rows

    @property
    def position(self) -> list[int]:
        return [self.epoch, self.taken]

    def seek(self, position: list[int]) -> None:
        self.epoch, self.taken = position


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
        self.order: EpochOrder | None = None
        self.resume: tuple[int, int] | None = None  # (epoch, rows done) from a checkpoint
        self.extra: ExtraPrompts | None = None  # made on dynamic sampling's first extra round
        self.extra_resume: list[int] | None = None  # its position from a checkpoint

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            data = self.make_dataset()
            self.splits = {name: data[name].to_list() for name in ("train", "eval")}

    def train_dataloader(self) -> DataLoader:
        train = self.splits["train"]
        options = {"batch_size": self.batch_size, "drop_last": True, "collate_fn": self.collate}
        if self.trainer is not None and self.trainer.world_size > 1:
            # Lightning shards the rows with a DistributedSampler seeded by the global seed
            generator = torch.Generator().manual_seed(self.seed)
            return DataLoader(train, shuffle=True, generator=generator, **options)
        # resuming mid-epoch continues this order where it stopped (Lightning warns otherwise)
        warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
        self.order = EpochOrder(len(train), self.seed)
        if self.resume is not None:
            self.order.resume_at(*self.resume)
        # the loader's own generator only draws its workers' base seed (EpochOrder replays it)
        return DataLoader(train, sampler=self.order, generator=torch.Generator(), **options)

    def state_dict(self) -> dict:
        """Where the training pass stands: its epoch and the rows its finished batches took."""
        if self.order is None or self.trainer is None:
            return {}
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        state = {"epoch": self.order.serving, "rows_done": done * self.batch_size}
        if self.extra is not None:
            state["extra_prompts"] = self.extra.position
        return state

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.resume = (state["epoch"], state["rows_done"])
            if self.order is not None:
                self.order.resume_at(*self.resume)
            self.extra_resume = state.get("extra_prompts")
            if self.extra is not None and self.extra_resume is not None:
                self.extra.seek(self.extra_resume)

    def extra_batch(self, rank: int = 0) -> PromptBatch:
        """The next `batch_size` prompts of rank `rank`'s extra stream (:class:`ExtraPrompts`), for
        DAPO's dynamic sampling; the training loader's order, and so its resume, stay as they are."""
        self.setup()
        train = self.splits["train"]
        if self.extra is None:
            self.extra = ExtraPrompts(len(train), self.seed, rank)
            if self.extra_resume is not None:
                self.extra.seek(self.extra_resume)
        return self.collate([train[i] for i in self.extra.take(self.batch_size)])

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
