"""RL hyperparameters: the one place where defaults live, and their validation.

A run's hyperparameters are ``{"env": {...}, "ppo": {...}, "loss": {...}}`` (docs/CONTRACT.md).
``resolve(env_name, loss, overrides)`` starts from the built-in env table and the suite's
defaults, applies overrides, and rejects unknown sections/keys and bad values, naming them.

Sources of the defaults:
* Paper, Table 3 (same for every environment): lr 1e-4, vf_coef (alpha_value) 0.5,
  gamma 0.999, gae_lambda 0.95, alphas 0.01 / 0.01 / 2 (see ``scopeloss.losses.PPO_DEFAULTS``).
* Atari, everything else: CleanRL ``ppo_atari_envpool.py`` (8 envs x 128 steps, 4 epochs,
  4 minibatches, clip 0.1, max_grad_norm 0.5, lr annealing, 10M agent steps), except the
  value loss: not clipped (``clip_vloss: false``). With the paper's gamma 0.999 returns
  reach 50-300 while clipping lets the value move by at most clip_coef (0.1) per update,
  so the critic would lag for ~1M steps; Andrychowicz et al. 2021 ("What matters in
  on-policy RL?", sec. 3.2/Fig. 4) found value clipping does not help and often hurts.
  The switch stays (``ppo.clip_vloss: true`` = CleanRL). We keep 8 envs even for GPU runs: the batch size (1024) and the number of updates
  are part of the algorithm that the published PPO numbers came from (baselines ppo2 and
  CleanRL both use 8), and a GPU job is bound by env stepping at this size anyway; the
  grid's many cells run in parallel instead. ``total_steps`` counts agent steps (env steps
  summed over envs); with frame skip 4 that is 4x as many emulator frames (10M steps =
  40M frames).
* Procgen, everything else: CleanRL ``ppo_procgen.py`` (64 envs x 256 steps, 3 epochs,
  8 minibatches, clip 0.2, no lr annealing (``anneal_lr=False`` there), 25M agent steps),
  levels as Cobbe et al. (hard, 500 levels).
* Gymnasium ids (not a paper env; used to prove learning): CleanRL ``ppo.py`` for CartPole
  (4 envs x 128 steps, lr 2.5e-4, gamma 0.99, clip 0.2, 500k steps).
* MinAtar (Young & Tian 2019; not a paper env: the CPU-scale stand-in): the paper's Table 3
  values (lr, gamma, lambda, vf_coef, alphas) learn on MinAtar, so they stay; 5M agent
  steps (Young & Tian's budget: 5M frames, no frame skip); CleanRL ppo_atari's epochs,
  minibatches and clip, with rollouts of 8 envs x 64 steps (learnt faster than 8 x 128 on
  MinAtar Breakout at 150k steps: README) and no value clipping (Andrychowicz et al. 2021).
  Env settings are minatar.Environment's defaults (sticky actions 0.1, difficulty ramping).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from scopeloss.devices import job_cores  # noqa: F401  (re-exported: the run-settings default)
from scopeloss.losses import PPO_DEFAULTS, PPO_LOSSES
from scopeloss.params import ConfigError
from scopeloss.overrides import parse_set  # noqa: F401  (re-exported: the CLI's --set)

SUITES = ("atari", "procgen", "gym", "minatar")

# The paper's eight environments. Atari names are ALE ROM ids (snake_case); the paper's
# 'v0' ids mean sticky actions 0.25 (set in AtariEnv below).
ENV_TABLE: dict[str, dict[str, Any]] = {
    "Pong": {"suite": "atari", "game": "pong"},
    "Breakout": {"suite": "atari", "game": "breakout"},
    "Asterix": {"suite": "atari", "game": "asterix"},
    "Seaquest": {"suite": "atari", "game": "seaquest"},
    "Venture": {"suite": "atari", "game": "venture"},
    "Gravitar": {"suite": "atari", "game": "gravitar"},
    "MontezumaRevenge": {"suite": "atari", "game": "montezuma_revenge"},
    "StarPilot": {"suite": "procgen", "game": "starpilot"},
    # MinAtar (Young & Tian 2019): CPU-scale stand-ins; Breakout, Asterix and Seaquest are
    # games of the paper's Figure 2. ``game`` is the minatar package's module name.
    "MinAtarBreakout": {"suite": "minatar", "game": "breakout"},
    "MinAtarAsterix": {"suite": "minatar", "game": "asterix"},
    "MinAtarSeaquest": {"suite": "minatar", "game": "seaquest"},
    "MinAtarSpaceInvaders": {"suite": "minatar", "game": "space_invaders"},
    "MinAtarFreeway": {"suite": "minatar", "game": "freeway"},
}


@dataclass
class AtariEnv:
    suite: str = "atari"
    game: str = "pong"
    repeat_action_probability: float = 0.25  # 'v0' sticky actions
    frameskip: int = 4
    noop_max: int = 30
    episodic_life: bool = False  # true is rejected: see validate()
    max_episode_steps: int = 27000  # agent steps = 108000 frames (DeepMind's 30 minutes)


@dataclass
class ProcgenEnv:
    suite: str = "procgen"
    game: str = "starpilot"
    distribution_mode: str = "hard"
    num_levels: int = 500
    start_level: int = 0
    eval_num_levels: int = 0  # 0 = unlimited levels drawn at random: unseen in training
    eval_start_level: int | None = None  # None = start_level + num_levels


@dataclass
class GymEnv:
    suite: str = "gym"
    game: str = "CartPole-v1"


@dataclass
class MinAtarEnv:
    """MinAtar's own defaults (``minatar.Environment``)."""

    suite: str = "minatar"
    game: str = "breakout"
    sticky_action_prob: float = 0.1  # minatar.Environment default
    difficulty_ramping: bool = True  # minatar.Environment default
    max_episode_steps: int | None = None  # None = no time limit (the package has none)


ENV_CLASSES = {"atari": AtariEnv, "procgen": ProcgenEnv, "gym": GymEnv, "minatar": MinAtarEnv}


@dataclass
class PPOConfig:
    total_steps: int = 10_000_000
    num_envs: int = 8
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 1.0e-4  # paper Table 3
    anneal_lr: bool = True  # CleanRL (procgen: off, as CleanRL ppo_procgen)
    gamma: float = 0.999  # paper Table 3
    gae_lambda: float = 0.95  # paper Table 3
    clip_coef: float = 0.1
    clip_vloss: bool = True
    vf_coef: float = 0.5  # paper Table 3 (alpha_value)
    max_grad_norm: float = 0.5
    norm_adv: bool = True  # eq. 9, per minibatch
    eval_every: int = 0  # updates; procgen only, 0 = never
    eval_episodes: int = 64
    bf16: bool = True  # only acts on cuda


# Per-suite departures from the PPOConfig defaults (sources in the module docstring).
SUITE_PPO_DEFAULTS: dict[str, dict[str, Any]] = {
    "atari": {"clip_vloss": False},
    "procgen": {"total_steps": 25_000_000, "num_envs": 64, "num_steps": 256,
                "update_epochs": 3, "num_minibatches": 8, "clip_coef": 0.2, "anneal_lr": False,
                "eval_every": 50, "eval_episodes": 64},
    "gym": {"total_steps": 500_000, "num_envs": 4, "num_steps": 128, "lr": 2.5e-4,
            "gamma": 0.99, "clip_coef": 0.2},
    "minatar": {"total_steps": 5_000_000, "num_envs": 8, "num_steps": 64, "clip_vloss": False},
}


@dataclass
class RunSettings:
    """How and where a run executes; never part of its identity (docs/CONTRACT.md)."""

    device: str = "auto"  # auto = cuda if available for atari/procgen, else cpu
    compile: bool = False
    torch_threads: int | None = None  # None = the cores this job may use
    env_threads: int | None = None  # None = the same, capped at num_envs
    checkpoint_every: int | None = None  # updates; None = the suite's default
    tensorboard: bool = True


SUITE_CHECKPOINT_EVERY = {"atari": 100, "procgen": 20, "gym": 50, "minatar": 50}
GPU_SUITES = ("atari", "procgen")  # where device 'auto' picks cuda if there is one
# Keys that used to sit in the ppo section and are run settings now.
MOVED_TO_RUN = ("device", "compile", "torch_threads", "checkpoint_every")


@dataclass
class LossConfig:
    alpha: float | None = None  # None = the paper's default for the loss


SECTIONS = ("env", "ppo", "loss")


def _err(msg: str) -> ConfigError:
    return ConfigError(msg)


_KINDS = {"bool": bool, "int": int, "float": float, "str": str}


def _coerce(section: str, key: str, value: Any, type_name: str) -> Any:
    """Check ``value`` against the field's annotation; ints are accepted for floats;
    floats must be finite."""
    where = f"{section}.{key}"
    names = [t.strip() for t in type_name.split("|")]
    if value is None:
        if "None" in names:
            return None
        raise _err(f"{where} must not be null")
    kind = _KINDS[names[0]]
    if kind is bool:
        if not isinstance(value, bool):
            raise _err(f"{where} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise _err(f"{where} must be an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _err(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise _err(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise _err(f"{where} must be a string, got {value!r}")
    return value


def _apply(section: str, obj: Any, values: dict[str, Any]) -> None:
    if not isinstance(values, dict):
        raise _err(f"section {section!r} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            raise _err(f"unknown key '{section}.{key}' for {type(obj).__name__}; "
                       f"allowed: {', '.join(fields)}")
        setattr(obj, key, _coerce(section, key, value, str(fields[key].type)))


def _is_gym_id(name: str) -> bool:
    import gymnasium

    return name in gymnasium.envs.registry


def base_env(env_name: str, env_override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The env table entry for ``env_name`` (or a Gymnasium id), else an error listing both."""
    env_override = env_override or {}
    if "suite" in env_override:
        return {}  # a complete spec comes from the caller (e.g. the workflow's env_specs)
    if env_name in ENV_TABLE:
        return dict(ENV_TABLE[env_name])
    if _is_gym_id(env_name):
        return {"suite": "gym", "game": env_name}
    raise _err(f"unknown env {env_name!r}; allowed: {', '.join(ENV_TABLE)}, "
               "or any registered Gymnasium id (e.g. CartPole-v1)")


def resolve(env_name: str, loss: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resolved hyperparameters for one run; raises ValueError naming any bad key or value."""
    if loss not in PPO_LOSSES:
        raise _err(f"unknown loss {loss!r}; allowed: {', '.join(PPO_LOSSES)}")
    overrides = copy.deepcopy(overrides or {})
    if not isinstance(overrides, dict):
        raise _err(f"hyperparameters must be a mapping with sections {SECTIONS}, got {overrides!r}")
    for section, values in overrides.items():
        if section == "run":
            raise _err("'run' holds run settings, not hyperparameters: pass them with --run "
                       "(or --set run.KEY=VALUE)")
        if section not in SECTIONS:
            raise _err(f"unknown section {section!r}; allowed: {', '.join(SECTIONS)}")
        if values is not None and not isinstance(values, dict):
            raise _err(f"section {section!r} must be a mapping, got {values!r}")
    for key in MOVED_TO_RUN:
        if key in (overrides.get("ppo") or {}):
            raise _err(f"ppo.{key} is a run setting now (it does not change what is learnt): "
                       f"pass it as run.{key} in --run, or --set run.{key}=VALUE")

    env_values = {**base_env(env_name, overrides.get("env")), **(overrides.get("env") or {})}
    suite = env_values.get("suite")
    if suite not in SUITES:
        raise _err(f"env.suite must be one of {', '.join(SUITES)}, got {suite!r}")
    env = ENV_CLASSES[suite]()
    _apply("env", env, env_values)
    ppo = PPOConfig(**SUITE_PPO_DEFAULTS[suite])
    _apply("ppo", ppo, overrides.get("ppo") or {})
    loss_cfg = LossConfig()
    _apply("loss", loss_cfg, overrides.get("loss") or {})
    if loss_cfg.alpha is None:  # record the value actually used
        loss_cfg.alpha = PPO_DEFAULTS[loss].get("alpha")

    hp = {"env": dataclasses.asdict(env), "ppo": dataclasses.asdict(ppo),
          "loss": dataclasses.asdict(loss_cfg)}
    if suite == "procgen" and hp["env"]["eval_start_level"] is None:
        hp["env"]["eval_start_level"] = hp["env"]["start_level"] + hp["env"]["num_levels"]
    validate(hp)
    return hp


def validate(hp: dict[str, Any]) -> None:
    env, p = hp["env"], hp["ppo"]

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            section, name = key.split(".")
            value = hp[section][name]
            raise _err(f"{key} must be {what}, got {value!r}")

    for key in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                "eval_episodes"):
        need(p[key] > 0, f"ppo.{key}", "a positive integer")
    need(p["total_steps"] % p["num_envs"] == 0, "ppo.total_steps",
         f"a multiple of ppo.num_envs ({p['num_envs']}) so that the run ends exactly on it")
    need(p["num_minibatches"] <= p["num_envs"] * p["num_steps"], "ppo.num_minibatches",
         f"at most num_envs * num_steps ({p['num_envs'] * p['num_steps']})")
    need(p["lr"] > 0, "ppo.lr", "positive")
    need(0 < p["gamma"] <= 1, "ppo.gamma", "in (0, 1]")
    need(0 <= p["gae_lambda"] <= 1, "ppo.gae_lambda", "in [0, 1]")
    need(p["clip_coef"] > 0, "ppo.clip_coef", "positive")
    need(p["vf_coef"] >= 0, "ppo.vf_coef", "non-negative")
    need(p["max_grad_norm"] > 0, "ppo.max_grad_norm", "positive")
    need(p["eval_every"] >= 0, "ppo.eval_every", "a non-negative integer (0 = never)")
    if env["suite"] == "atari":
        from ale_py import roms

        need(env["game"] in roms.get_all_rom_ids(), "env.game",
             "an installed ALE ROM id (snake_case, e.g. pong, montezuma_revenge)")
        need(0 <= env["repeat_action_probability"] <= 1, "env.repeat_action_probability",
             "in [0, 1]")
        need(env["frameskip"] > 0, "env.frameskip", "a positive integer")
        need(env["noop_max"] >= 0, "env.noop_max", "a non-negative integer")
        need(env["max_episode_steps"] > 0, "env.max_episode_steps", "a positive integer")
        # ale-py 0.12's AtariVectorEnv resets the whole game on a life loss when
        # episodic_life is on, which is not CleanRL's semantics (life loss terminal for
        # learning only, game continues): rejected rather than silently different.
        need(not env["episodic_life"], "env.episodic_life",
             "false (ale-py 0.12's vector env would reset the whole game at every life "
             "loss, unlike CleanRL's EpisodicLifeEnv; full-game episodes only)")
    elif env["suite"] == "procgen":
        from procgen.env import DISTRIBUTION_MODE_DICT, ENV_NAMES

        need(env["game"] in ENV_NAMES, "env.game", f"one of {', '.join(ENV_NAMES)}")
        need(env["distribution_mode"] in DISTRIBUTION_MODE_DICT, "env.distribution_mode",
             f"one of {', '.join(DISTRIBUTION_MODE_DICT)}")
        need(env["num_levels"] >= 0, "env.num_levels", "a non-negative integer")
        need(env["start_level"] >= 0, "env.start_level", "a non-negative integer")
        need(env["eval_num_levels"] >= 0, "env.eval_num_levels", "a non-negative integer")
        need(env["eval_start_level"] >= 0, "env.eval_start_level", "a non-negative integer")
    elif env["suite"] == "minatar":
        from scopeloss.rl.envs.minatar import GAMES

        need(env["game"] in GAMES, "env.game", f"one of {', '.join(GAMES)}")
        need(0 <= env["sticky_action_prob"] <= 1, "env.sticky_action_prob", "in [0, 1]")
        need(env["max_episode_steps"] is None or env["max_episode_steps"] > 0,
             "env.max_episode_steps", "null (no limit) or a positive integer")
    else:
        need(_is_gym_id(env["game"]), "env.game", "a registered Gymnasium id")


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Section-wise merge of two override mappings (``extra`` wins). A section of either
    that is not a mapping is an error naming it (it would otherwise be replaced whole)."""
    out = copy.deepcopy(base)
    for section, values in extra.items():
        for where, value in (("--hparams", out.get(section)), ("--set", values)):
            if value is not None and not isinstance(value, dict):
                raise _err(f"{where}: section {section!r} must be a mapping, got {value!r}")
        if isinstance(values, dict) and isinstance(out.get(section), dict):
            out[section].update(values)
        else:
            out[section] = copy.deepcopy(values)
    return out


def resolve_run(hp: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resolved run settings for the run with hyperparameters ``hp``: every null replaced by
    its value on this machine (device, threads, checkpoint cadence). Raises ValueError naming
    a bad key. Resolving an already resolved mapping gives it back unchanged."""
    run = copy.deepcopy(run or {})
    if not isinstance(run, dict):
        raise _err(f"run settings must be a mapping, got {run!r}")
    settings = RunSettings()
    _apply("run", settings, run)
    r = dataclasses.asdict(settings)

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise _err(f"run.{key} must be {what}, got {r[key]!r}")

    need(r["device"] in ("auto", "cpu", "cuda"), "device", "one of auto, cpu, cuda")
    for key in ("torch_threads", "env_threads", "checkpoint_every"):
        need(r[key] is None or r[key] > 0, key, "null or a positive integer")
    suite = hp["env"]["suite"]
    if r["device"] == "auto":
        import torch

        r["device"] = "cuda" if suite in GPU_SUITES and torch.cuda.is_available() else "cpu"
    cores = job_cores()
    if r["torch_threads"] is None:
        r["torch_threads"] = cores
    r["env_threads"] = min(r["env_threads"] or cores, hp["ppo"]["num_envs"])
    if r["checkpoint_every"] is None:
        r["checkpoint_every"] = SUITE_CHECKPOINT_EVERY.get(suite, 50)
    return r


__all__ = ["ENV_TABLE", "SUITES", "AtariEnv", "ProcgenEnv", "GymEnv", "MinAtarEnv", "PPOConfig",
           "LossConfig",
           "RunSettings", "resolve", "resolve_run", "validate", "parse_set", "merge", "job_cores"]
