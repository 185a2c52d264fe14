"""The configuration reference, made from the typed schemas: `python -m analysis.config_reference`.

Every key of every validated block (`laser.configs.SCHEMAS`), with its value in the default run
(`conf/train.yaml` composed, interpolations resolved), its type and the schema's own docstring.
`python -m analysis.config_reference check` fails when `docs/config-reference.md` is not what the
schemas give.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import sys
import typing
from pathlib import Path

from omegaconf import OmegaConf

from laser import configs
from laser.utils.compose import compose_config

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "config-reference.md"
HEAD = """# Configuration reference

Every key of every config block, generated from the schemas in `laser/configs.py` by
`python -m analysis.config_reference` (a test checks that this page is what they give). *Default*
is the value in the default run (`python -m laser.run` with no overrides); config group options
(`algo=grpo`, `model=hf`, `+experiment=...`) change some of them. For what the groups are and how
to choose among their options, see [Configuration](configuration.md).
"""


@functools.cache
def schema_classes() -> dict[str, ast.ClassDef]:
    """The class definitions of `laser.configs`, parsed once."""
    tree = ast.parse(inspect.getsource(configs))
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}


def attribute_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (a string literal after its annotation)."""
    body = schema_classes()[cls.__name__].body
    docs = {}
    for node, after in itertools.pairwise(body):
        is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def rows(cls: type, values: dict, prefix: str) -> list[list[str]]:
    """One row per leaf key of `cls` (nested blocks flattened to dotted keys)."""
    hints, docs, out = typing.get_type_hints(cls), attribute_docs(cls), []
    for f in dataclasses.fields(cls):
        key, value, hint = f"{prefix}.{f.name}", values.get(f.name), hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += rows(hint, value or {}, key)
            continue
        shown = (
            "null"
            if value is None
            else OmegaConf.to_yaml(value).strip()
            if isinstance(value, dict | list)
            else value
        )
        out.append([f"`{key}`", f"`{cell(str(shown))}`", cell(type_name(hint)), cell(docs.get(f.name, ""))])
    return out


def page() -> str:
    cfg = compose_config(["paths.root_dir=.", "paths.output_dir=."])
    parts = [HEAD]
    for group, schema in configs.SCHEMAS.items():
        values = OmegaConf.to_container(cfg[group], resolve=True)
        doc = " ".join((schema.__doc__ or "").split())
        table = ["| key | default | type | meaning |", "| --- | --- | --- | --- |"]
        table += ["| " + " | ".join(r) + " |" for r in rows(schema, values, group)]
        parts.append(f"## `{group}`\n\n{doc}\n\n" + "\n".join(table) + "\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = page()
    if argv[:1] == ["check"]:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run `python -m analysis.config_reference`")
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
