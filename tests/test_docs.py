"""The documentation a user clones: no file points outside the repository, and every
relative link of README.md and docs/ resolves to a file of the checkout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout: every file under the root
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                and ".venv" not in p.parts and ".git" not in p.parts]
    return out.stdout.split()


def test_no_file_refers_outside_the_repository():
    outside = "../" + "shared"  # spelt in two parts so that this file does not match itself
    hits = []
    for name in tracked_files():
        path = ROOT / name
        if path.suffix in (".png", ".pdf", ".parquet", ".npy", ".pt") or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if outside in line]
    assert not hits, hits


def test_every_relative_link_resolves():
    broken, checked = [], 0
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in LINK.findall(md.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            checked += 1
            path = (md.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{md.relative_to(ROOT)} -> {target}")
    assert not broken, broken
    assert checked > 15  # the README and docs link to each other and to the results


def test_the_readme_is_a_guide_of_at_most_160_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 160, len(lines)
    text = "\n".join(lines)
    for heading in ("## Two commands", "## The paper's grid", "## Add your loss and compare it "
                    "with Scope", "## Results", "## Architecture"):
        assert heading in text, heading


def _doc_texts() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text()
            for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]}


def test_every_command_the_docs_name_exists():
    """Every `python -m scopeloss.…` (with its subcommand) the README and docs/ name answers
    --help, and every `make TARGET` they name is a target `make -n` knows: no doc sends a
    newcomer to a command that does not exist."""
    import os
    import sys

    modules, targets = set(), set()
    for text in _doc_texts().values():
        for m in re.finditer(r"python -m (scopeloss(?:\.\w+)+)(?: ([a-z][a-z_-]*)(?![\w/.]))?",
                             text):
            modules.add((m.group(1), m.group(2)))
        targets.update(re.findall(r"`make ([a-z][\w-]*)", text))
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            targets.update(re.findall(r"^\s*make ([a-z][\w-]*)", block, re.M))
    assert ("scopeloss.grid", "check") in modules and {"demo", "test", "plan"} <= targets
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    failed = []
    for module, sub in sorted(modules, key=str):
        argv = [sys.executable, "-m", module, *([sub] if sub else []), "--help"]
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            failed.append(f"{' '.join(argv[1:])}: {proc.stderr.strip()[-300:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    for target in sorted(targets):
        proc = subprocess.run(["make", "-n", target], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        if proc.returncode != 0:
            failed.append(f"make {target}: {proc.stderr.strip()[-300:]}")
    assert not failed, failed
