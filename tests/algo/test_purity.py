"""laser.algo must import without any training framework (torch only)."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_laser_algo_imports_no_framework():
    code = (
        "import laser.algo, sys; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'lightning', 'hydra', 'transformers', 'pytorch_lightning'}); "
        "assert not bad, bad"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
