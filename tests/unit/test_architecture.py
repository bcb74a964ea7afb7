"""The structure docs/design.md promises, checked: SQL only in state/, files of a size a reader holds.
(The import rule between layers is checked by import-linter in `make lint`.)"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "isobox"
LONG_LINES = 450  # "around 400 lines": a longer module says why in its docstring
LONG_REASON = "long because"


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_sql_lives_only_in_state() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(SOURCE)
        if relative.parts[0] == "state":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if "sqlite3" in names:
                    offenders.append(f"{relative}: imports sqlite3")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("query", "transaction", "write")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "db"
            ):
                offenders.append(f"{relative}:{node.lineno}: .db.{node.attr}")
    assert not offenders, "SQL belongs in a state/ repository:\n" + "\n".join(offenders)


def test_modules_are_short_or_say_why() -> None:
    long = []
    for path in _modules():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > LONG_LINES and LONG_REASON not in docstring:
            long.append(f"{path.relative_to(SOURCE)}: {lines} lines")
    assert not long, "past ~400 lines without a reason in the docstring:\n" + "\n".join(long)
