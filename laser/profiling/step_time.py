"""LaSeR vs GRPO training-step time, and the in-rollout score's share of generation time.

    python -m laser.profiling.step_time [--rounds 8] [--steps 12] [--threads 2] [overrides ...]

Both algorithms start from the same base policy (the default config's, built or loaded from the
cache) and run the same prompts, interleaved round by round in one process with pinned torch threads.
LaSeR runs with both warm-ups at 0, so every step pays for everything it adds: the in-rollout score
step, the MSE and the advantage mixing. Two comparisons:

    from the base   every step starts again from the base policy (weights and optimiser state put
                    back after it), so at step k both algorithms sample the very same responses
                    and the steps pair up: the ratio of medians over all steps, and the median of
                    the paired ratios, are the cost of what LaSeR adds, on identical work
    free-running    each algorithm trains on; after the first step the two policies sample
                    different responses (other lengths), so a round's ratio also carries how the
                    policies drifted apart (each round's ratio is printed: its spread shows it)

The score's cost at inference is measured on the same seeded samples generated with and without it
(medians over repeats, the cost itself as the median of paired differences, decoding steps
counted), and compared with re-encoding the finished completions in a separate forward pass, as the
paper's public evaluation does.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import asdict, replace

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from laser import metric_names as names
from laser.assembly import check_self_reward, make_samplers
from laser.configs import validate
from laser.data.arithmetic import arithmetic_dataset
from laser.data.datamodule import PromptDataModule
from laser.data.sources import dataset_key
from laser.lit.module import LaserModule
from laser.models.factory import make_base_policy
from laser.models.loading import load_tokenizer
from laser.rewards import make_verifier
from laser.rollout.logprobs import sequence_logprobs
from laser.utils.compose import compose_config


class StepTimer(Callback):
    """Wall time of each training batch (rollout, verification and update)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._start)


class FromBase(Callback):
    """Puts the policy's weights and optimiser state back after every step, so every step starts
    from the base policy, and counts each step's response tokens (same for both algorithms)."""

    def __init__(self) -> None:
        self.tokens: list[int] = []

    def on_train_start(self, trainer, module) -> None:
        self.weights = copy.deepcopy(module.policy.state_dict())
        self.optimiser = copy.deepcopy(trainer.optimizers[0].state_dict())

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self.tokens.append(int(trainer.callback_metrics[names.train(names.TOKENS_RESPONSE)]))  # as logged
        module.policy.load_state_dict(self.weights)
        trainer.optimizers[0].load_state_dict(self.optimiser)


def time_steps(
    run, algo, base, tokenizer, datamodule, token_id, steps: int, seed: int, from_base: FromBase | None = None
) -> list[float]:
    """Per-step times of `steps` training steps from a fresh copy of the base policy (every step
    from it again with `from_base`)."""
    L.seed_everything(seed, verbose=False)
    module = LaserModule(
        copy.deepcopy(base),
        *make_samplers(run, tokenizer, token_id, seed),
        verifier=make_verifier(run.reward, run.data.task),
        algo=algo,
        optim=run.optim,
        self_reward_id=token_id,
    )
    module.c_ref.fill_(-20.0)
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps,
        logger=False,
        callbacks=[timer] if from_base is None else [timer, from_base],  # timed first
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.times[1:]  # the first step pays one-off start-up costs


class ForwardCounter:
    """Counts a model's forward calls (decoding steps) through a pre-forward hook."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, *args) -> None:
        self.calls += 1


def score_share(run, base, tokenizer, datamodule, token_id, repeats: int) -> dict[str, dict[str, float]]:
    """Generation of the same samples (same seeds) without and with the in-rollout score, and the
    re-encoding alternative: median times over repeats, the mean number of forward calls, and the
    score's cost as the median of the paired differences (each repeat generates its seed's samples
    both ways, back to back in alternating order, so a slow spike of the machine hits one pair and
    the median drops it)."""
    sampler, _ = make_samplers(run, tokenizer, token_id, seed=0)
    batch = datamodule.sample_prompts(run.data.batch_size)
    model = copy.deepcopy(base).eval()
    counter = ForwardCounter(model)
    times: dict[str, list[float]] = {"off": [], "on": [], "reencode": []}
    calls: dict[str, list[int]] = {"off": [], "on": []}
    for i in range(repeats):
        for key in ("off", "on") if i % 2 else ("on", "off"):
            sampler.generator.manual_seed(i)
            counter.calls = 0
            start = time.perf_counter()
            rollout = sampler.sample(model, batch, run.algo.group_size, score=key == "on")
            times[key].append(time.perf_counter() - start)
            calls[key].append(counter.calls)
        times["reencode"].append(time_reencoding(model, rollout, token_id))
    out = {
        key: {"time": statistics.median(t), "calls": statistics.mean(calls.get(key, [0]))}
        for key, t in times.items()
    }
    out["paired"] = {"time": statistics.median(a - b for a, b in zip(times["on"], times["off"], strict=True))}
    return out


@torch.no_grad()
def time_reencoding(model: torch.nn.Module, rollout, token_id: int) -> float:
    """Seconds to score the finished completions as the paper's public evaluation does: a separate
    forward over prompt + response + EOS, reading log p(z) after EOS (`sequence_logprobs`)."""
    start = time.perf_counter()
    sequence_logprobs(model, rollout.rows(rollout.finished), token_id)
    return time.perf_counter() - start


def benchmark_algos(run) -> dict:
    """LaSeR with both warm-ups at 0 (every step scores, adds the MSE and mixes), and GRPO."""
    sr = replace(run.algo.self_reward, reasoning_warmup_steps=0, self_reward_warmup_steps=0)
    return {
        "laser": replace(run.algo, self_reward=sr),
        "grpo": replace(run.algo, name="grpo", self_reward=replace(sr, alpha=0.0, tau=0.0)),
    }


def compare(setup: tuple, rounds: int, steps: int, from_base: bool) -> dict:
    """Step times of each algorithm over `rounds` rounds of `steps` steps (round r seeded r, the
    order alternating), each round's ratio of medians, and (from the base) each step's response
    tokens. `setup`: (run, algos, base, tokenizer, datamodule, token_id)."""
    run, algos, base, tokenizer, datamodule, token_id = setup
    times: dict[str, list[float]] = {name: [] for name in algos}
    tokens: dict[str, list[int]] = {name: [] for name in algos}
    round_ratios = []
    for r in range(rounds):
        order = list(algos) if r % 2 == 0 else list(reversed(algos))
        this = {}
        for name in order:
            reset = FromBase() if from_base else None
            this[name] = time_steps(run, algos[name], base, tokenizer, datamodule, token_id, steps, r, reset)
            times[name] += this[name]
            tokens[name] += [] if reset is None else reset.tokens[1:]  # as the times: the first left out
        round_ratios.append(statistics.median(this["laser"]) / statistics.median(this["grpo"]))
    return {"times": times, "tokens": tokens, "round_ratios": round_ratios}


def print_comparison(title: str, result: dict, target: str = "") -> None:
    times = result["times"]
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{title}:")
    print(f"  GRPO  step time (median of {len(times['grpo'])}): {med['grpo'] * 1e3:8.1f} ms")
    print(f"  LaSeR step time (median of {len(times['laser'])}): {med['laser'] * 1e3:8.1f} ms")
    print(f"  LaSeR / GRPO step-time ratio: {med['laser'] / med['grpo']:.3f}{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12, help="training steps per algorithm per round")
    parser.add_argument("--repeats", type=int, default=200, help="generation repeats for the score share")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the default config")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    paths = ["paths.output_dir=outputs/benchmarks", "paths.root_dir=."]
    cfg = compose_config([*paths, *args.overrides])
    run = validate(cfg)
    tokenizer = load_tokenizer(run.model.name_or_path)
    token_id = check_self_reward(run, tokenizer)
    data = arithmetic_dataset(**asdict(run.data.task))
    datamodule = PromptDataModule(lambda: data, tokenizer, run.data.batch_size, run.data.eval_batch_size)
    datamodule.setup()
    base = make_base_policy(
        run.model, tokenizer, data["train"], dataset_key(run.data), cfg.paths.cache_dir, 0
    )

    setup = (run, benchmark_algos(run), base, tokenizer, datamodule, token_id)
    paired = compare(setup, args.rounds, args.steps, from_base=True)
    free = compare(setup, args.rounds, args.steps, from_base=False)
    gen = score_share(run, base, tokenizer, datamodule, token_id, args.repeats)

    print(f"threads={args.threads} rounds={args.rounds} steps/round={args.steps}")
    print_comparison("from the base policy at every step (same responses)", paired, "  (target <= 1.03)")
    same = paired["tokens"]["laser"] == paired["tokens"]["grpo"]
    print(f"  response tokens of every step the same for both: {'yes' if same else 'NO'}")
    pairs = zip(paired["times"]["laser"], paired["times"]["grpo"], strict=True)
    print(f"  median of the paired per-step ratios: {statistics.median(a / b for a, b in pairs):.3f}")
    print_comparison("free-running (the policies drift apart)", free)
    ratios = ", ".join(f"{x:.3f}" for x in free["round_ratios"])
    print(f"  each round's ratio of medians: {ratios}")
    off, on, again = gen["off"], gen["on"], gen["reencode"]
    for label, g in (("without score", off), ("with in-rollout score", on)):
        print(f"generation {label:21s}: {g['time'] * 1e3:6.1f} ms, {g['calls']:.1f} forward calls")
    extra = gen["paired"]["time"]  # median of the paired differences
    share = 100 * extra / on["time"]
    print(f"(a) in-rollout score: {extra * 1e3:+.1f} ms = {share:.2f}% of generation time (target <= 3%)")
    print(f"(b) re-encoding prompt + response + EOS: {again['time'] * 1e3:.1f} ms")
    print(f"(b) / (a): {again['time'] / max(extra, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
