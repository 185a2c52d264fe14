"""Data-parallel plumbing of the LightningModule: reductions over ranks, gradient sync, FSDP."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from lightning.pytorch.strategies import ParallelStrategy
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.utils.data import DistributedSampler


class DataParallelMixin:
    """Helpers for a LightningModule under DDP or FSDP. Each one is the identity on one process, so
    single-process numbers do not change."""

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def sum_over_ranks(self, values: dict[str, torch.Tensor | float]) -> dict[str, torch.Tensor]:
        """Scalars summed over data-parallel ranks, in one all-reduce."""
        if self.world_size == 1:
            return values
        as_tensor = [torch.as_tensor(v, dtype=torch.float32, device=self.device) for v in values.values()]
        stacked = torch.stack(as_tensor)
        summed = self.trainer.strategy.reduce(stacked, reduce_op="sum")
        return dict(zip(values, summed.unbind(), strict=True))

    def mean_over_ranks(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalars averaged over ranks (means over equally many items on every rank)."""
        if self.world_size == 1 or not values:
            return values
        return {k: v / self.world_size for k, v in self.sum_over_ranks(values).items()}

    def element_mean_over_ranks(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mean of the elements of `x` of every rank (however many each has), and their number."""
        if self.world_size == 1:
            return x.mean(), x.numel()
        total = self.sum_over_ranks({"sum": x.float().sum(), "count": x.numel()})
        count = int(total["count"].item())
        return total["sum"] / max(count, 1), count

    def gather_rows(self, x: torch.Tensor) -> torch.Tensor:
        """`x` (equally many rows on every rank) of all ranks, concatenated in rank order."""
        if self.world_size == 1:
            return x
        gathered = self.all_gather(x.float() if x.dtype == torch.bool else x)  # gloo has no bool
        return gathered.flatten(0, 1).to(x.dtype)

    def gather_eval_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Per-prompt validation rows of all ranks in dataset order, without the prompts Lightning's
        DistributedSampler repeats so that every rank gets as many (it deals position i to rank
        i % world_size and pads the end with the first prompts)."""
        if self.world_size == 1:
            return x
        loader = self.trainer.val_dataloaders
        if not isinstance(getattr(loader, "sampler", None), DistributedSampler) or loader.sampler.shuffle:
            return self.gather_rows(x)
        gathered = self.all_gather(x.float() if x.dtype == torch.bool else x)  # (world, n_local)
        return gathered.transpose(0, 1).flatten(0, 1)[: len(loader.dataset)].to(x.dtype)

    def gradient_sync(self, last: bool) -> AbstractContextManager:
        """DDP all-reduces gradients on the step's last backward only; earlier micro-batches
        accumulate locally (the strategy's no_sync; a no-op elsewhere)."""
        strategy = self._trainer.strategy if self._trainer is not None else None
        if last or not isinstance(strategy, ParallelStrategy):
            return nullcontext()
        return strategy.block_backward_sync()

    def in_strategy_forward(self, method: str, *args):
        """`self.<method>(*args)`, under FSDP inside the root module's forward: outside the training
        and validation steps, only that forward gathers the root's sharded weights."""
        root = self._trainer.strategy.model if self._trainer is not None else None
        if not isinstance(root, FullyShardedDataParallel):
            return getattr(self, method)(*args)
        return self.trainer.strategy._forward_redirection(root, self, method, *args)

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Clip the global gradient norm and return it (before clipping). DDP's gradients are already
        all-reduced; FSDP's are sharded, so its root module computes the norm over all shards."""
        root = self._trainer.strategy.model if self._trainer is not None else None
        if isinstance(root, FullyShardedDataParallel):
            return root.clip_grad_norm_(max_norm)
        return torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm)
