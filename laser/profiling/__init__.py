"""Timing tools: `python -m laser.profiling.<name>` (step_time: LaSeR and GRPO steps side by side;
stage_time: a training step split by stage, measured or read from a run's metrics.csv)."""
