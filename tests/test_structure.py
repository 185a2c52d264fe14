"""The package's import arrows: the entry point is imported by no module, and the config schemas
know nothing of the data loaders."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "laser"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (at any depth of the file, lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_module_imports_the_entry_point() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "run.py" and {"laser.run"} & imported_modules(path)
    ]
    assert not importers, f"these import laser.run (move what they need to laser.assembly): {importers}"


def test_the_import_check_sees_lazy_imports(tmp_path: Path) -> None:
    file = tmp_path / "m.py"
    file.write_text("def f():\n    from laser import run\n    import laser.data.sources\n")
    assert {"laser.run", "laser.data.sources"} <= imported_modules(file)


def test_configs_do_not_import_the_data_package() -> None:
    assert not any(m.startswith("laser.data") for m in imported_modules(PACKAGE / "configs.py"))
    code = "import json, sys, laser.configs; print(json.dumps([m for m in sys.modules if 'laser' in m]))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert not [m for m in loaded if m.startswith(("laser.data", "laser.run", "laser.assembly"))], loaded


def test_the_entry_point_stays_thin() -> None:
    lines = (PACKAGE / "run.py").read_text().splitlines()
    assert len(lines) <= 120, f"laser/run.py has {len(lines)} lines; move assembly to laser/assembly.py"


def test_the_library_does_not_import_the_research_probes() -> None:
    library = [PACKAGE / name for name in ("lit", "rollout", "algo", "eval")]
    importers = [
        str(path.relative_to(ROOT))
        for folder in library
        for path in sorted(folder.rglob("*.py"))
        if any(m == "laser.research" or m.startswith("laser.research.") for m in imported_modules(path))
    ]
    assert not importers, f"these import laser.research (a probe belongs outside the library): {importers}"
