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
