"""Tokenise and pad prompts for generation (left padding) and completions (right padding)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def pad_batch(seqs: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token lists to one width: returns ids (N, L) and mask (N, L), 1 on real tokens."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span] = torch.tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


@dataclass
class PromptBatch:
    """B prompts ready for generation.

    Attributes:
        prompt_ids: (B, P) left-padded prompt tokens.
        prompt_mask: (B, P) 1 on real tokens.
        prompts: the prompt texts.
        answers: the reference final answers, for the verifier.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    prompts: list[str]
    answers: list[str]

    def __len__(self) -> int:
        return len(self.answers)

    def rows(self, index: torch.Tensor) -> PromptBatch:
        """The prompts at `index` ((M,) long), in that order."""
        picked = index.tolist()
        return PromptBatch(
            self.prompt_ids[index],
            self.prompt_mask[index],
            [self.prompts[i] for i in picked],
            [self.answers[i] for i in picked],
        )

    @staticmethod
    def cat(parts: list[PromptBatch], pad_id: int) -> PromptBatch:
        """Batches one after another, left-padded again to the widest prompt, on the first's device."""
        width = max(p.prompt_ids.shape[1] for p in parts)
        device = parts[0].prompt_ids.device

        def left_pad(x: torch.Tensor, value: int) -> torch.Tensor:
            return torch.nn.functional.pad(x.to(device), (width - x.shape[1], 0), value=value)

        return PromptBatch(
            torch.cat([left_pad(p.prompt_ids, pad_id) for p in parts]),
            torch.cat([left_pad(p.prompt_mask, 0) for p in parts]),
            [text for p in parts for text in p.prompts],
            [answer for p in parts for answer in p.answers],
        )


class PromptCollator:
    """Collate dataset records ({prompt, answer}) into a left-padded PromptBatch."""

    def __init__(self, tokenizer, add_bos: bool = True) -> None:
        self.tokenizer = tokenizer
        self.add_bos = add_bos and tokenizer.bos_token_id is not None

    def encode(self, prompt: str) -> list[int]:
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        return [self.tokenizer.bos_token_id, *ids] if self.add_bos else ids

    def __call__(self, records: list[dict]) -> PromptBatch:
        prompts = [r["prompt"] for r in records]
        ids, mask = pad_batch([self.encode(p) for p in prompts], self.tokenizer.pad_token_id, True)
        return PromptBatch(ids, mask, prompts, [str(r["answer"]) for r in records])
