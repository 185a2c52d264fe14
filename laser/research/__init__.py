"""Research probes: quick studies of a task design or a policy, run from the command line.

They sit outside the library's import graph (nothing in `laser.lit`, `laser.rollout`, `laser.algo`
or `laser.eval` imports them), sample through `laser.eval`'s code, and write what they print as a
JSON file with `--json PATH`.
"""
