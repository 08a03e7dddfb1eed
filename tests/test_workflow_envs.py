"""requirements.lock and envs/*.yaml: the lock resolves pyproject and is what the venv holds;
conda env specs are valid and pinned exactly to the lock, covering every
third-party import of the code each rule runs, and named by every rule. Conda itself
cannot be installed on the project's machines, so this is what can be checked here."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from scopeloss import fingerprint

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "scopeloss"
ENVS = {p.stem: p for p in sorted((ROOT / "envs").glob("*.yaml"))}
SHARED = ("__init__.py", "atomic.py", "runinfo.py")


def _closure(*entries: str) -> tuple[str, ...]:
    """The src/scopeloss files a rule family runs: the modules its entry points import,
    the same set whose fingerprint is the rule's code param (common.smk)."""
    files = set()
    for entry in entries:
        files.update(fingerprint.module_closure(entry).values())
    return tuple(sorted(str(f.relative_to(PKG)) for f in files))


# The code each env runs: the modules the rules' CLIs import.
CODE = {"rl": _closure(fingerprint.TRAINERS["rl"]),
        "classify": _closure(fingerprint.TRAINERS["classify"], fingerprint.TRAINERS["prepare"]),
        "analysis": _closure(*fingerprint.ANALYSIS)}
# Imported lazily by pandas rather than by our code: the tables are written as parquet.
INDIRECT = {"analysis": {"pyarrow"}}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def pip_specs(env: str) -> dict[str, str]:
    data = yaml.safe_load(ENVS[env].read_text())
    pips = [d["pip"] for d in data["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, f"{env}: one pip section expected"
    return {_name(s): s.replace(" ", "") for s in pips[0]}


def pyproject_specs() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_name(s): s.replace(" ", "") for s in deps}


def test_every_env_is_a_conda_environment_spec():
    assert {"rl", "classify", "analysis"} <= set(ENVS)
    for env, path in ENVS.items():
        data = yaml.safe_load(path.read_text())
        assert set(data) <= {"name", "channels", "dependencies"}, env
        assert isinstance(data["name"], str) and data["name"]
        assert all(isinstance(c, str) for c in data["channels"])
        conda = [d for d in data["dependencies"] if isinstance(d, str)]
        assert any(re.fullmatch(r"python=3\.1[1-9]", d) for d in conda), env
        assert "pip" in conda, f"{env}: a pip section needs pip itself"
        for dep in data["dependencies"]:
            assert isinstance(dep, str) or (isinstance(dep, dict) and set(dep) == {"pip"}), dep


def lock_entries() -> list[tuple[str, str, str]]:
    """requirements.lock (uv pip compile --universal): (name, version, marker or "") rows; a
    name may have one row per marker (e.g. networkx for Python 3.11 and 3.12)."""
    rows = []
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        req, _, marker = line.partition(";")
        name, sep, version = req.strip().partition("==")
        assert sep, f"requirements.lock: {line!r} is not an exact pin"
        rows.append((_name(name), version.strip(), marker.strip()))
    return rows


def lock_pins() -> dict[str, tuple[str, str]]:
    """name -> (version, marker) of the lock's row that applies on this interpreter."""
    return {n: (v, m) for n, v, m in lock_entries() if _applies_here(m)}


def _applies_here(marker: str) -> bool:
    from packaging.markers import Marker

    return not marker or Marker(marker).evaluate()


def test_lock_satisfies_pyproject():
    """Every requirement of pyproject.toml (dev extra included) is locked, at a version the
    requirement allows: the lock is a resolution of pyproject, not of something older."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        assert _name(req.name) in pins, f"requirements.lock lacks {req.name} (pyproject: {spec}); run make lock"
        assert pins[_name(req.name)][0] in req.specifier, \
            f"requirements.lock: {req.name}=={pins[_name(req.name)][0]} outside pyproject's {spec}; run make lock"


def test_venv_is_exactly_the_lock():
    """`make setup` installed the lock: every package the lock names for this platform at
    its version, and nothing else (besides the project itself and the venv's own pip)."""
    import sysconfig

    pins = lock_pins()
    # the venv's own site-packages only: setuptools puts vendored copies on sys.path
    site = sysconfig.get_paths()["purelib"]
    installed = {_name(d.metadata["Name"]): d.version for d in metadata.distributions(path=[site])}
    wanted = {n: v for n, (v, _) in pins.items()}
    wrong = {n: (v, installed.get(n)) for n, v in wanted.items() if installed.get(n) != v}
    assert not wrong, f"venv differs from requirements.lock (locked, installed): {wrong}; run make setup"
    extra = set(installed) - set(wanted) - {"scopeloss", "pip", "setuptools"}
    assert not extra, f"installed but not in requirements.lock: {sorted(extra)}"


def test_lock_is_consistent():
    """The locked set satisfies its own requirements (uv pip check on the venv that is the
    lock, offline: no index is asked)."""
    import subprocess

    uv = Path(sys.executable).with_name("uv")
    done = subprocess.run([str(uv), "pip", "check", "--python", sys.executable],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_env_pins_are_exact_and_from_the_lock():
    """Every pip pin of envs/*.yaml is `name==version`, a pyproject dependency, at the version
    of requirements.lock: conda envs and the venv run the same packages."""
    project = pyproject_specs()
    pins = lock_pins()
    for env in ENVS:
        for name, spec in pip_specs(env).items():
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.+\-]*", spec), \
                f"envs/{env}.yaml: {spec} is not an exact pin"
            assert name in project, f"envs/{env}.yaml: {name} is not a pyproject dependency"
            assert spec.split("==", 1)[1] == pins[name][0], \
                f"envs/{env}.yaml: {spec}, but requirements.lock has {name}=={pins[name][0]}"


def test_trainer_envs_carry_minatar_and_tensorboard():
    assert "minatar" in pip_specs("rl")  # the minatar suite
    for env in ("rl", "classify"):  # scopeloss.progress writes TensorBoard scalars
        assert "tensorboard" in pip_specs(env)


def test_data_env_is_light():
    """The fetch/prepare env has no torch; it covers what the data code imports besides
    torch, which `scopeloss.classify.data prepare` still reaches (classify.config ->
    losses; digits_lt's cache resize): the rules keep the classify env until it does not."""
    from scopeloss.fingerprint import TRAINERS, module_closure

    specs = pip_specs("data")
    assert not {"torch", "torchvision"} & set(specs)
    dists = metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | {"__future__", "scopeloss"}
    needed = set()
    for path in module_closure(TRAINERS["prepare"]).values():
        needed |= {m for m in _imports(path) if m not in stdlib}
    needed -= {"torch", "torchvision"}
    missing = {m for m in needed if not {_name(d) for d in dists[m]} & set(specs)}
    assert not missing, f"envs/data.yaml lacks the distributions of {missing}"
    assert {"numpy", "PIL"} <= needed


def _imports(path: Path) -> set[str]:
    """Top-level names of every import in the file (module level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party_imports(env: str) -> set[str]:
    files = [PKG / name for name in SHARED] + [PKG / name for name in CODE[env]]
    own: set[str] = set()
    for f in files:
        # The shared helpers import torch lazily, only in functions the analysis never
        # calls (torch_save, device names; the loss functions, whose registry the analysis
        # reads for labels and colours: test_losses checks that reading it imports no
        # torch): count their module-level imports only.
        if f.name in ("atomic.py", "runinfo.py", "__init__.py", "losses.py", "loss_calls.py"):
            tree = ast.parse(f.read_text())
            for node in tree.body:
                if isinstance(node, ast.Import):
                    own.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    own.add(node.module.split(".")[0])
        else:
            own |= _imports(f)
    stdlib = set(sys.stdlib_module_names) | {"__future__", "scopeloss"}
    return {m for m in own if m not in stdlib}


@pytest.mark.parametrize("env", ["rl", "classify", "analysis"])
def test_env_covers_every_third_party_import_of_its_code(env):
    dists = metadata.packages_distributions()
    have = set(pip_specs(env))
    needed = {}
    for module in third_party_imports(env):
        assert module in dists, f"{module} (imported by {env} code) is not installed"
        needed[module] = {_name(d) for d in dists[module]}
    missing = {m: d for m, d in needed.items() if not d & have}
    assert not missing, f"envs/{env}.yaml lacks the distributions of {missing}"
    assert INDIRECT.get(env, set()) <= have
    assert needed, "found no imports: the code this test reads has moved"


def test_rules_fingerprint_the_modules_they_run():
    assert {"rl/ppo.py", "rl/rollout.py", "rl/update.py", "rl/envs/__init__.py", "lifecycle/__init__.py",
            "lifecycle/checkpoints.py", "losses.py"} <= set(CODE["rl"])
    assert {"classify/train.py", "classify/data.py", "losses.py"} <= set(CODE["classify"])
    assert "analysis/figures.py" in CODE["analysis"] and "registry/__init__.py" in CODE["analysis"]
    assert "loss_check.py" not in CODE["analysis"]  # the check is the registry's __main__, apart
    assert "rl/ppo.py" not in CODE["analysis"]
    text = (ROOT / "workflow/rules/common.smk").read_text()
    # a cell's fingerprint is its trainer's plus that of its (a variant's base) loss's module
    assert 'base = grid.base_loss(config, "rl", wildcards.loss)' in text
    assert 'return fingerprint.cell_fingerprint("rl", base)' in text
    assert 'base = grid.base_loss(config, "classification", wildcards.loss)' in text
    assert 'return fingerprint.cell_fingerprint("classify", base)' in text


def test_every_rule_names_an_env():
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))
    rules = re.findall(r"^rule (\w+):", text, flags=re.M)
    assert {"train_rl", "train_classifier", "aggregate_rl", "aggregate_classification",
            "plot_training_curves", "precision_tables", "fetch_caltech256"} <= set(rules)
    blocks = re.split(r"^rule ", text, flags=re.M)[1:]
    # the data rules may use the light env once the prepare CLI imports no torch
    wanted = {"train_rl": ("rl",), "train_classifier": ("classify",),
              "fetch_caltech256": ("classify", "data"), "fetch_cifar": ("classify", "data"),
              "prepare_dataset": ("classify", "data")}
    for block in blocks:
        name = block.split(":", 1)[0]
        found = re.search(r'conda:\s*\n\s*"\.\./\.\./envs/(\w+)\.yaml"', block)
        assert found, f"rule {name} names no conda env"
        assert found.group(1) in wanted.get(name, ("analysis",)), name
        assert (ROOT / "envs" / f"{found.group(1)}.yaml").is_file()
