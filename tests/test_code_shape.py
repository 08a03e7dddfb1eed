"""Shape rules the code keeps (issue 27): long argument lists travel as typed configs or
keywords, and the typed configs are the declarations."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from scopeloss.config_keys import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src" / "scopeloss"


def test_no_function_takes_more_than_six_positional_parameters():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                if names[:1] in (["self"], ["cls"]):
                    names = names[1:]
                if len(names) > 6:
                    too_long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not too_long, too_long


def test_the_typed_configs_are_the_declarations_and_refuse_a_misspelt_key():
    import pytest

    from scopeloss import params
    from scopeloss.rl import config as rl_config
    from scopeloss.params import ExperimentConfig, PPOConfig
    from scopeloss.classify import config as cl_config

    hp = rl_config.resolve("CartPole-v1", "scope")
    ppo = PPOConfig.from_mapping(hp["ppo"], "ppo")
    assert {f.name for f in dataclasses.fields(ppo)} == set(params.PPO)
    assert ppo.batch_size == ppo.num_envs * ppo.num_steps
    with pytest.raises(dataclasses.FrozenInstanceError):
        ppo.lr = 1.0
    with pytest.raises(ConfigError, match="ppo: missing nothing, unknown lrate"):
        PPOConfig.from_mapping({**hp["ppo"], "lrate": 1.0}, "ppo")
    e = ExperimentConfig.from_mapping(
        cl_config.resolve("digits_lt", "augmented_cuda", "scope")["experiment"])
    assert e.cuda.enabled and e.augmentation.flip_p == 0.5


def test_every_suite_and_dataset_kind_has_its_typed_section():
    import pytest

    from scopeloss import params
    from scopeloss.classify import config as cl_config
    from scopeloss.rl import config as rl_config
    from scopeloss.params import ENV_CONFIGS, DatasetConfig, EnvConfig

    for env in ("Breakout", "StarPilot", "CartPole-v1", "MinAtarBreakout"):
        section = rl_config.resolve(env, "scope", games=False)["env"]
        cfg = EnvConfig.of(section)
        assert type(cfg) is ENV_CONFIGS[section["suite"]] and dataclasses.asdict(cfg) == section
        assert list(section) == ["suite", *params.RL_ENV[section["suite"]]]
        assert EnvConfig.of(cfg) is cfg
    assert EnvConfig.of(rl_config.resolve("Breakout", "scope")["env"]).frames_per_step == 4
    with pytest.raises(ConfigError, match="env: missing nothing, unknown noop"):
        EnvConfig.of({**rl_config.resolve("Pong", "scope")["env"], "noop": 3})
    with pytest.raises(ConfigError, match="env.suite must be one of atari, procgen"):
        EnvConfig.of({"suite": "arcade"})
    for dataset in params.CL_DATASET_KIND:
        section = cl_config.resolve_dataset(dataset)
        cfg = DatasetConfig.of(section)
        assert dataclasses.asdict(cfg) == section
        assert {f.name for f in dataclasses.fields(cfg)} == {
            *params.CL_DATASET, *params.CL_DATASET_KIND[dataset]}
    with pytest.raises(ConfigError, match="unknown max_per_clas "):
        DatasetConfig.of({**cl_config.resolve_dataset("digits_lt"), "max_per_clas": 3})


def test_the_benchmark_scripts_import_what_src_has():
    """A benchmark that still calls a renamed function fails here, not when it is next run
    (each ``--help`` imports the script's modules). The JAX yardstick needs jax and flax,
    which the lock leaves out."""
    import subprocess
    import sys

    bench = SRC.parents[1] / "benchmarks"
    broken = {}
    for script in sorted(bench.glob("*.py")):
        if script.name == "jax_yardstick.py":
            continue
        proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            broken[script.name] = proc.stderr.strip().splitlines()[-1:]
    assert not broken, broken


# --------------------------------------------------------------------------- typed access
def _config_classes() -> dict[str, type]:
    from scopeloss import params as typed_config

    return {name: cls for name, cls in vars(typed_config).items()
            if isinstance(cls, type) and dataclasses.is_dataclass(cls)}


def _type_name(annotation) -> str | None:
    """The config class an annotation names (``X``, ``X | None``, ``"X"``), else None (also
    for ``X | Mapping``: which one it is, only the code after an isinstance knows)."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    members, stack = [], [annotation]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            stack += [node.left, node.right]
        elif not (isinstance(node, ast.Constant) and node.value is None):
            members.append(node)
    if len(members) == 1 and isinstance(members[0], ast.Name) and (
            members[0].id in _config_classes()):
        return members[0].id
    return None


def _constructed(value) -> str | None:
    """The config class ``Cls(...)``, ``Cls.from_mapping(...)`` or ``Cls.of(...)`` builds (a
    subclass for ``of``: its fields are checked as the base's), else None."""
    if isinstance(value, ast.Call):
        f = value.func
        if isinstance(f, ast.Attribute) and f.attr in ("from_mapping", "of"):
            f = f.value
        if isinstance(f, ast.Name) and f.id in _config_classes():
            return f.id
    return None


def _attribute_errors(source: str, where: str) -> tuple[int, list[str]]:
    """Every ``x.attr`` on a value of a typed config class — a parameter annotated with
    one, a name or ``self.name`` assigned one, a class field or property typed as one, and
    their nested sections — checked against the class's fields and members. Returns how
    many accesses were checked and the misspelt ones."""
    classes = _config_classes()

    def members(name: str) -> set[str]:
        cls = classes[name]
        return {f.name for f in dataclasses.fields(cls)} | set(dir(cls))

    def field_type(name: str, attr: str) -> str | None:
        for f in dataclasses.fields(classes[name]):
            if f.name == attr:
                return _type_name(ast.parse(str(f.type), mode="eval").body)
        return None

    tree = ast.parse(source)
    owned: dict[str, str] = {}  # attribute name -> config class, from classes' fields
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for item in cls.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                if t := _type_name(item.annotation):
                    owned[item.target.id] = t
            elif isinstance(item, ast.FunctionDef) and (t := _type_name(item.returns)):
                if any(isinstance(d, (ast.Name, ast.Attribute)) and
                       getattr(d, "id", getattr(d, "attr", "")).endswith("property")
                       for d in item.decorator_list):
                    owned[item.name] = t
    functions = {}  # each function's typed locals: annotated parameters, names assigned one
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))):
        local = functions[fn] = {}
        for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:
            if getattr(a, "annotation", None) is not None and (t := _type_name(a.annotation)):
                local[a.arg] = t
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and (t := _constructed(node.value)):
                local.update({n.id: t for n in node.targets if isinstance(n, ast.Name)})
    for fn, local in functions.items():  # self.x = <a typed value>
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                t = _constructed(node.value) or (isinstance(node.value, ast.Name)
                                                 and local.get(node.value.id))
                for target in node.targets:
                    if t and isinstance(target, ast.Attribute):
                        owned[target.attr] = t

    checked, errors = 0, []

    def type_of(expr, local: dict[str, str]) -> str | None:
        if isinstance(expr, ast.Name):
            return local.get(expr.id)
        if isinstance(expr, ast.Attribute):
            outer = type_of(expr.value, local)
            if outer:
                return field_type(outer, expr.attr)
            return owned.get(expr.attr)
        return None

    for fn, local in functions.items():
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and (t := type_of(node.value, local)):
                checked += 1
                if node.attr not in members(t):
                    errors.append(f"{where}:{node.lineno} {t} has no {node.attr!r}")
    return checked, sorted(set(errors))


def test_every_attribute_read_off_a_typed_config_is_one_of_its_fields():
    """A misspelt field name in the trainers fails here, before any run reaches it."""
    checked, errors = 0, []
    for path in sorted(SRC.rglob("*.py")):
        n, errs = _attribute_errors(path.read_text(), str(path.relative_to(SRC)))
        checked, errors = checked + n, errors + errs
    assert not errors, errors
    assert checked > 50, f"only {checked} typed accesses found: the checker lost track"


def test_the_typed_access_check_finds_a_misspelt_field():
    bad = '''
from scopeloss.params import PPOConfig, ExperimentConfig
def update(p: PPOConfig, e: ExperimentConfig | None):
    return p.clip_coeff, p.batch_size, e.augmentation.flip_prob, e.cuda.enabled
class Run:
    def __init__(self, hp):
        self.cfg = PPOConfig.from_mapping(hp, "ppo")
    def step(self):
        return self.cfg.lr, self.cfg.gama
'''
    checked, errors = _attribute_errors(bad, "bad.py")
    assert checked == 8  # e.augmentation and e.cuda are reads too
    assert errors == ["bad.py:4 AugmentationConfig has no 'flip_prob'",
                      "bad.py:4 PPOConfig has no 'clip_coeff'",
                      "bad.py:9 PPOConfig has no 'gama'"]


def test_each_trainer_cli_resolves_its_run_settings_once(tmp_path, monkeypatch):
    """The CLI resolves ``--run``/``--set run.*`` where they enter and hands the trainer a
    typed ``*RunConfig``, which the trainer uses as it is (a mapping it would resolve)."""
    from scopeloss.classify import config as cl_config
    from scopeloss.classify import train as cl_train
    from scopeloss.rl import config as rl_config
    from scopeloss.rl import ppo
    from scopeloss.rl import train as rl_train

    calls = []

    def counting(resolve):
        def resolve_run(*args, **kwargs):
            calls.append(resolve.__module__)
            return resolve(*args, **kwargs)
        return resolve_run

    monkeypatch.setattr(rl_train, "resolve_run", counting(rl_config.resolve_run))
    monkeypatch.setattr(ppo, "resolve_run", counting(rl_config.resolve_run))
    monkeypatch.setattr(cl_config, "resolve_run", counting(cl_config.resolve_run))
    assert rl_train.main(["--env", "CartPole-v1", "--loss", "scope", "--seed", "1",
                          "--out", str(tmp_path / "rl"), "--run", '{"torch_threads": 1}',
                          "--set", "run.tensorboard=false", "--set", "ppo.total_steps=512",
                          "--set", "ppo.num_envs=4", "--set", "ppo.num_steps=128"]) == 0
    assert cl_train.main(["--dataset", "digits_lt", "--experiment", "plain", "--loss", "scope",
                          "--seed", "1", "--out", str(tmp_path / "cl"),
                          "--set", f"dataset.root={tmp_path / 'data'}",
                          "--set", "run.torch_threads=1", "--set", "run.num_workers=0",
                          "--set", "run.tensorboard=false", "--set", "dataset.image_size=16",
                          "--set", "dataset.resize_size=16", "--set", "experiment.model=resnet18",
                          "--set", "experiment.epochs=1"]) == 0
    assert calls == ["scopeloss.rl.config", "scopeloss.classify.config"]
