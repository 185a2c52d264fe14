"""Benchmark scripts: `python -m laser.benchmarks.<name>`. They print ratios measured side by side."""
