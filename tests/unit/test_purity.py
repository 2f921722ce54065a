"""The functional core may not touch clocks, randomness, sockets, threads, processes or the OS.

Checked mechanically on the source (every `import`/`from ... import`, at any depth), so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "daemon" / "pyetcd"
PURE_DIRS = ("store", "server", "http", "raft")
PURE_FILES = ("storage/wal_codec.py", "locksmith/semaphore.py", "sched/placement.py", "sched/layout.py")
FORBIDDEN = {"time", "random", "socket", "select", "selectors", "ssl", "os", "threading", "subprocess",
             "signal"}


def _pure_modules() -> list[Path]:
    files = [p for d in PURE_DIRS for p in sorted((PKG / d).rglob("*.py"))]
    return files + [PKG / f for f in PURE_FILES]


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                roots.add(node.args[0].value.split(".")[0])
    return roots


def test_pure_module_list_is_not_empty() -> None:
    names = {p.relative_to(PKG).as_posix() for p in _pure_modules()}
    assert {"store/store.py", "server/apply.py", "http/client_api.py", "storage/wal_codec.py", "raft/core.py"} <= names


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: p.relative_to(PKG).as_posix())
def test_pure_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = _imported_roots(tree) & FORBIDDEN
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


def test_checker_catches_nested_and_aliased_imports() -> None:
    src = "def f():\n    import os.path as p\n    from time import monotonic\n    __import__('random')\n"
    assert _imported_roots(ast.parse(src)) == {"os", "time", "random"}
