"""A fingerprint of the code a training job runs, blind to comments, docstrings and layout.

``code_fingerprint("scopeloss.rl.train")`` follows the ``scopeloss.*`` imports of that
module (module-level and function-level, statically: nothing is imported) and hashes the
normalised AST of every module reached. Editing a comment, a docstring or the formatting
of a file leaves it unchanged; editing a statement changes it. The workflow passes it as a
rule param (a changed fingerprint reruns the cell) and the trainers put the same value in
their checkpoint identity (a changed fingerprint never resumes an older checkpoint).

Only this package's source counts: a new torch or gymnasium version is not a code change
here (it is recorded in every summary.json's run_info instead).
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry reads this module: no import back at run time
    from scopeloss.registry import Loss

PACKAGE = "scopeloss"
_ROOT = Path(__file__).resolve().parent  # src/scopeloss

# The entry module of each training CLI; the workflow and the trainers use these names.
TRAINERS = {"rl": "scopeloss.rl.train", "classify": "scopeloss.classify.train",
            "prepare": "scopeloss.classify.data"}
# The analysis CLIs that the aggregate, figure and table rules run.
ANALYSIS = ("scopeloss.analysis.aggregate", "scopeloss.analysis.figures",
            "scopeloss.analysis.tables", "scopeloss.analysis.precision_figure",
            "scopeloss.analysis.claims")


def module_path(name: str, root: Path = _ROOT) -> Path | None:
    """The source file of ``scopeloss.a.b`` under ``root``, or None if there is none."""
    parts = name.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def _parse(path: str, mtime_ns: int, size: int) -> ast.Module:
    """A file's AST, parsed once per version of the file (the Snakefile fingerprints four
    closures that share most of their modules: each is read once)."""
    return ast.parse(Path(path).read_text(), filename=path)


@lru_cache(maxsize=None)
def _module_imports(path: str, mtime_ns: int, size: int, name: str) -> frozenset[str]:
    tree = _parse(path, mtime_ns, size)
    return frozenset(_imports(tree, name, Path(path).name == "__init__.py"))


@lru_cache(maxsize=None)
def _normalised(path: str, mtime_ns: int, size: int) -> str:
    # strips the cached tree in place: what else reads it (the imports) has no docstrings
    tree = _strip_docstrings(_parse(path, mtime_ns, size))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def normalised_source(path: Path) -> str:
    """The module's AST without docstrings, as text (comments and layout are not in it)."""
    stat = path.stat()
    return _normalised(str(path), stat.st_mtime_ns, stat.st_size)


def _imports(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Names of the package's modules that ``current`` imports (``from x import y`` may name
    a submodule ``x.y``; relative imports are resolved)."""
    found: set[str] = set()
    package = current if is_package else current.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != PACKAGE:
                continue
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def module_closure(entry: str, root: Path = _ROOT) -> dict[str, Path]:
    """Every package module reachable from ``entry`` by imports (with parent packages)."""
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_path(name, root)
        if path is None:  # ``from pkg import function``: not a module
            continue
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent __init__s
        stat = path.stat()
        todo.extend(_module_imports(str(path), stat.st_mtime_ns, stat.st_size, name))
    return seen


@lru_cache(maxsize=None)
def code_fingerprint(*entries: str) -> str:
    """sha256 (16 hex digits) of the normalised AST of the ``entries`` and what they import."""
    modules: dict[str, Path] = {}
    for entry in entries:
        modules.update(module_closure(entry))
    digest = hashlib.sha256()
    for name, path in sorted(modules.items()):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(normalised_source(path).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


LOSS_KIND = {"rl": "ppo", "classify": "supervised"}


def cell_fingerprint(trainer: str, loss: str | Loss) -> str:
    """The code fingerprint of one training cell: its trainer's, plus (after a ``+``) that of
    the user module that registered its loss (the registered object, or its name), so that
    editing the module reruns the cells of its losses and nothing else. A built-in loss's
    cell has the trainer's alone."""
    if isinstance(loss, str):
        from scopeloss import registry

        loss = registry.get(LOSS_KIND[trainer], loss)
    module = loss.module
    base = code_fingerprint(TRAINERS[trainer])
    if module is None:  # a built-in: its code is the trainer's
        return base
    own = hashlib.sha256(normalised_source(Path(module)).encode()).hexdigest()[:16]
    return f"{base}+{own}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scopeloss.fingerprint",
                                     description="print the code fingerprint of a trainer")
    parser.add_argument("entry", nargs="?", default="rl",
                        help=f"one of {', '.join(TRAINERS)} or a module name")
    parser.add_argument("--modules", action="store_true", help="list the modules hashed")
    args = parser.parse_args(argv)
    entry = TRAINERS.get(args.entry, args.entry)
    print(code_fingerprint(entry))
    if args.modules:
        for name, path in sorted(module_closure(entry).items()):
            print(f"  {name}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
