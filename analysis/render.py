"""Execute every analysis notebook headless and write PNG figures, CSV tables and one HTML report.

    python -m analysis.render --runs outputs/ --out reports/latest
    python -m analysis.render --runs 'multirun/2026-*/*' --runs outputs/grpo --out reports/ablation

``--runs`` (repeatable) is a run dir, a sweep dir or a glob; it reaches the notebooks as ``LASER_RUNS``
(comma-separated), and ``--out`` as ``LASER_FIGURES``. The executed notebooks are kept in
``<out>/notebooks/``; the notebooks in ``analysis/`` stay output-free.
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import sys
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def notebooks() -> list[Path]:
    return sorted(HERE.glob("[0-9][0-9]-*.ipynb"))


def execute(nb_path: Path, out: Path, env: dict[str, str], timeout: int = 600) -> Path:
    """Run one notebook from the repo root with ``env`` set; save the executed copy under ``out``."""
    nb = nbformat.read(nb_path, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    dest = out / "notebooks" / nb_path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def _title(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            return cell.source.splitlines()[0].lstrip("# ").strip()
    return nb_path.stem


def write_report(out: Path, runs: list[str], nbs: list[Path]) -> Path:
    """One self-contained HTML page: per notebook its PNGs (embedded) and CSV tables."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>LaSeR analysis</title>",
        "<style>body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
        "img{max-width:100%;border:1px solid #ddd;margin:.5em 0}"
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        "<h1>LaSeR analysis</h1>",
        f"<p>runs: <code>{html.escape(', '.join(runs))}</code></p>",
    ]
    for nb in nbs:
        prefix = nb.name[:2]
        parts.append(f"<h2>{html.escape(_title(nb))}</h2>")
        for png in sorted(out.glob(f"{prefix}_*.png")):
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<h4>{png.name}</h4><img alt='{png.name}' src='data:image/png;base64,{data}'>")
        for csv in sorted(out.glob(f"{prefix}_*.csv")):
            try:
                frame = pd.read_csv(csv)
            except pd.errors.EmptyDataError:  # a table with no rows for these runs (no switch run, ...)
                parts.append(f"<h4>{csv.name}</h4><p>no data for these runs</p>")
                continue
            table = frame.to_html(index=False, float_format=lambda x: f"{x:.4g}", na_rep="")
            parts.append(f"<h4>{csv.name}</h4>{table}")
    parts.append("</body></html>")
    report = out / "report.html"
    report.write_text("\n".join(parts))
    return report


def render(runs: list[str], out: str | Path, only: list[str] | None = None) -> Path:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # absolute run paths: the kernels run from the repo root
    abs_runs = [r if Path(r).is_absolute() else str(Path.cwd() / r) for r in runs]
    env = {"LASER_RUNS": ",".join(abs_runs), "LASER_FIGURES": str(out), "MPLBACKEND": "Agg"}
    nbs = [nb for nb in notebooks() if not only or any(o in nb.name for o in only)]
    for nb in nbs:
        print(f"executing {nb.name}", file=sys.stderr)
        execute(nb, out, env)
    report = write_report(out, runs, nbs)
    print(f"report {report}")
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", action="append", required=True, help="run dir, sweep dir or glob (repeatable)")
    ap.add_argument("--out", required=True, help="output dir for figures, tables and report.html")
    ap.add_argument("--only", action="append", help="run only notebooks whose name contains this")
    args = ap.parse_args(argv)
    render(args.runs, args.out, args.only)


if __name__ == "__main__":
    main()
