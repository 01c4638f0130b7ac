# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Check that the standard-library names a package uses exist in the running interpreter.

Byte-compiling finds syntax of a newer Python (``except*``); this finds its library:
``import tomllib``, ``from typing import Self``, ``datetime.UTC``, ``ExceptionGroup``. Run it
with the oldest interpreter the package supports, e.g. ``python3.10 check_stdlib_names.py
PATH...`` (files, or folders of ``.py`` files); it imports only standard-library modules.
Names used inside ``try:`` blocks that catch ImportError or AttributeError are guarded and
not checked. Prints ``file:line: name`` per missing name and exits with 1 if there is one.
"""

import ast
import builtins
import importlib
import importlib.util
from pathlib import Path
import sys

LATER_BUILTINS = ('BaseExceptionGroup', 'ExceptionGroup', 'PythonFinalizationError')
"""Builtins added after Python 3.10."""

LATER_MODULES = ('tomllib',)
"""Top-level standard-library modules added after Python 3.10 (absent from its
``sys.stdlib_module_names``, so an import of one would pass for a third-party one)."""

GUARDS = ('ImportError', 'ModuleNotFoundError', 'AttributeError')


def _has(module: str, name: str) -> bool:
    """Return whether stdlib ``module`` has attribute or submodule ``name`` here."""
    try:
        return (hasattr(importlib.import_module(module), name)
                or importlib.util.find_spec(f'{module}.{name}') is not None)
    except ImportError:
        return False


def _guarded(tree: ast.AST) -> set[int]:
    """Return the ids of the nodes inside ``try:`` bodies that catch a missing name."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                name in ast.unparse(handler.type or ast.Name('BaseException'))
                for handler in node.handlers for name in GUARDS):
            guarded.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return guarded


def missing_names(path: Path) -> list[str]:
    """Return ``file:line: name`` for each standard-library name of ``path`` missing here."""
    tree = ast.parse(path.read_text(), str(path))
    guarded = _guarded(tree)
    nodes = [node for node in ast.walk(tree) if id(node) not in guarded]
    modules: dict[str, str] = {}  # local name -> stdlib module, from `import x [as y]`
    missing = []
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split('.')[0]
                if top in sys.stdlib_module_names or top in LATER_MODULES:
                    modules[alias.asname or top] = alias.name if alias.asname else top
                    if importlib.util.find_spec(alias.name) is None:
                        missing.append(f'{path}:{node.lineno}: import {alias.name}')
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split('.')[0] in (*sys.stdlib_module_names, *LATER_MODULES)):
            missing += [f'{path}:{node.lineno}: from {node.module} import {alias.name}'
                        for alias in node.names
                        if alias.name != '*' and not _has(node.module, alias.name)]
    for node in nodes:
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and not _has(modules[node.value.id], node.attr)):
            missing.append(f'{path}:{node.lineno}: {node.value.id}.{node.attr}')
        elif (isinstance(node, ast.Name) and node.id in LATER_BUILTINS
              and not hasattr(builtins, node.id)):
            missing.append(f'{path}:{node.lineno}: builtin {node.id}')
    return missing


def main(argv: list[str]) -> int:
    """Check every ``.py`` file under the given paths; return 1 if a name is missing."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    files = [f for arg in map(Path, argv)
             for f in (sorted(arg.rglob('*.py')) if arg.is_dir() else [arg])]
    missing = [line for path in files for line in missing_names(path)]
    print('\n'.join(missing) if missing else
          f'{len(files)} files: every standard-library name they use exists in Python '
          f'{sys.version.split()[0]}')
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
