"""Sampler: G completions per prompt, in generation micro-batches, with their texts."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from laser.data.collate import PromptBatch
from laser.rollout.distribution import SamplingDistribution
from laser.rollout.generate import generate
from laser.rollout.types import Rollout

# rank r of a data-parallel run samples with seed + r * RANK_SEED_STRIDE: far from the small offsets
# (seed + 1, ...) that tell a run's samplers apart
RANK_SEED_STRIDE = 1_000_003


class Sampler:
    """Samples completions for prompt batches with fixed sampling settings.

    Args:
        tokenizer: decodes responses and gives the EOS and pad ids.
        max_new_tokens: responses without EOS by then are truncated.
        temperature, top_p: sampling parameters.
        micro_batch_size: rows generated at once (bounds the KV cache's memory).
        self_reward_id: the self-reward token; masked out of sampling, scored after EOS.
        seed: seeds the sampling RNG (of rank 0; see `use_rank`).
        stop_ids: ids that end a response (the score is read after the one emitted); None: the
            tokenizer's EOS.
    """

    def __init__(
        self,
        tokenizer,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        micro_batch_size: int = 256,
        self_reward_id: int | None = None,
        seed: int = 0,
        stop_ids: Sequence[int] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.micro_batch_size = micro_batch_size
        self.self_reward_id = self_reward_id
        self.base_seed = self.seed = seed
        self.stop_ids = list(stop_ids) if stop_ids is not None else [tokenizer.eos_token_id]
        self.generator = torch.Generator().manual_seed(seed)
        self._device_generator: torch.Generator | None = None
        self._device_state: torch.Tensor | None = None  # a restored state for the next device generator
        self.banned_ids: list[int] = []
        self.timer = None  # a StageTimer that times the score's extra decoding step, if set

    def ban(self, token_id: int) -> None:
        """Never sample `token_id` (like the self-reward token): e.g. a second verdict token."""
        if token_id not in self.banned_ids:
            self.banned_ids.append(token_id)

    @property
    def distribution(self) -> SamplingDistribution:
        """What this sampler draws from; every log-prob pass over its rollouts takes this one."""
        return SamplingDistribution.of(self.temperature, self.top_p, self.self_reward_id, self.banned_ids)

    def greedy(self) -> Sampler:
        """A sampler like this one that decodes greedily (temperature 0), with its own RNG."""
        copy = Sampler(
            self.tokenizer, self.max_new_tokens, temperature=0.0, top_p=self.top_p,
            micro_batch_size=self.micro_batch_size, self_reward_id=self.self_reward_id,
            seed=self.base_seed, stop_ids=self.stop_ids,
        )  # fmt: skip
        copy.banned_ids = self.banned_ids  # shared: a token banned later is banned in both
        return copy

    def use_rank(self, rank: int) -> None:
        """Give data-parallel rank `rank` its own sampling stream (rank 0 keeps `seed` and its state)."""
        seed = self.base_seed + RANK_SEED_STRIDE * rank
        if seed != self.seed:
            self.seed = seed
            self.reset_rng()

    def reset_rng(self) -> None:
        """Restart the sampling RNG from `seed` (e.g. the same eval noise at every evaluation)."""
        self.generator.manual_seed(self.seed)
        self._device_generator = None
        self._device_state = None

    def rng_state(self) -> dict[str, torch.Tensor | None]:
        """The sampling RNG's state (its CPU generator's, and its accelerator generator's once one
        is in use), for checkpoints."""
        device = self._device_generator
        state = device.get_state() if device is not None else self._device_state
        return {"cpu": self.generator.get_state(), "device": state}

    def load_rng_state(self, state: dict[str, torch.Tensor | None]) -> None:
        """Continue from a state of `rng_state` (the accelerator's applies when it is next used)."""
        self.generator.set_state(state["cpu"])
        self._device_generator, self._device_state = None, state["device"]

    @torch.no_grad()
    def sample(
        self, model: torch.nn.Module, batch: PromptBatch, group_size: int = 1, score: bool = True,
        self_certainty: bool = False, confidence_top_k: int = 0,
    ) -> Rollout:  # fmt: skip
        """`group_size` completions per prompt (rows grouped by prompt), scored when `score`;
        `self_certainty` and `confidence_top_k` ask for per-token statistics (see `generate`)."""
        device = next(model.parameters()).device
        ids = batch.prompt_ids.repeat_interleave(group_size, 0).to(device)  # (B*G, P)
        mask = batch.prompt_mask.repeat_interleave(group_size, 0).to(device)
        was_training = model.training
        model.eval()
        parts = [
            generate(
                model,
                ids[i : i + self.micro_batch_size],
                mask[i : i + self.micro_batch_size],
                eos_id=self.stop_ids,
                pad_id=self.tokenizer.pad_token_id,
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                self_reward_id=self.self_reward_id,
                score=score,
                generator=self._generator_for(device),
                banned_ids=self.banned_ids,
                self_certainty=self_certainty,
                confidence_top_k=confidence_top_k,
                timer=self.timer,
            )
            for i in range(0, ids.shape[0], self.micro_batch_size)
        ]
        model.train(was_training)
        return Rollout.cat(parts, self.tokenizer.pad_token_id)

    def _generator_for(self, device: torch.device) -> torch.Generator:
        # on an accelerator a generator of that device, seeded like the CPU one: the global RNG is
        # seeded alike on every data-parallel rank, so it would give all ranks the same noise
        if device.type == "cpu":
            return self.generator
        if self._device_generator is None or self._device_generator.device != device:
            self._device_generator = torch.Generator(device).manual_seed(self.seed)
            if self._device_state is not None:  # restored from a checkpoint
                self._device_generator.set_state(self._device_state)
                self._device_state = None
        return self._device_generator

    def decode(self, rollout: Rollout) -> list[str]:
        """Response texts (special tokens, the stop token included, removed)."""
        ids = rollout.response_ids.masked_fill(rollout.response_mask == 0, self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
