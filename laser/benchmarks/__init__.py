"""Benchmark scripts: `python -m laser.benchmarks.<name>` (step_time: LaSeR and GRPO steps side by
side; stage_time: a training step split by stage)."""
