"""RL hyperparameters resolved and validated, from the declarations of ``scopeloss.params``.

A run's cell (``scopeloss.cells.RLCell``) records as ``{"env": {...}, "ppo": {...},
"loss": {...}}`` (docs/CONTRACT.md). ``resolve(env_name, loss, overrides)`` starts from the
built-in env table and the suite's defaults, applies overrides, and rejects unknown
sections/keys and bad values, naming them; it returns the typed cell.

Why the defaults declared in ``scopeloss.params`` (``PPO``, ``SUITE_PPO_DEFAULTS``,
``RL_ENV``) are what they are:
* Paper, Table 3 (same for every environment): lr 1e-4, vf_coef (alpha_value) 0.5,
  gamma 0.999, gae_lambda 0.95, alphas 0.01 / 0.01 / 2 (registered with each loss in
  ``scopeloss.losses``).
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

from typing import Any

from scopeloss import config_keys as K
from scopeloss import params as P
from scopeloss.cells import CellLoss, RLCell
from scopeloss.params import ENV_TABLE, GPU_SUITES, SUITES, EnvConfig, PPOConfig
from scopeloss.config_keys import ConfigError



# A run setting written among the PPO keys is named as such (some used to sit there).
MOVED_TO_RUN = tuple(P.RL_RUN)
SECTIONS = ("env", "ppo", "loss")


def base_env(env_name: str, env_override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The env table entry for ``env_name`` (or a Gymnasium id), else an error listing both."""
    env_override = env_override or {}
    if "suite" in env_override:
        return {}  # a complete spec comes from the caller (e.g. the workflow's env_specs)
    if env_name in ENV_TABLE:
        return dict(ENV_TABLE[env_name])
    from scopeloss.rl.envs import suite_module

    if suite_module("gym").game_problem(env_name) is None:  # a Gymnasium id
        return {"suite": "gym", "game": env_name}
    raise ConfigError(f"unknown env {env_name!r}; allowed: {', '.join(ENV_TABLE)}, "
                      "or any registered Gymnasium id (e.g. CartPole-v1)")


def _check_sections(overrides: Any, where: str) -> dict[str, Any]:
    K.check_sections(overrides, SECTIONS, where)
    for key in MOVED_TO_RUN:
        if key in (overrides.get("ppo") or {}):
            raise ConfigError(f"ppo.{key} is a run setting now (it does not change what is "
                              f"learnt): pass it as run.{key} in --run, or --set run.{key}=VALUE")
    return overrides


def resolve(env_name: str, loss: str, hparams: dict[str, Any] | None = None,
            sets: dict[str, Any] | None = None, *, games: bool = True) -> RLCell:
    """The typed cell of one run: the declared defaults (``scopeloss.params``: the suite's
    PPO departures, the env table), then ``hparams`` (``--hparams``), then ``sets``
    (``--set``), merged by ``config_keys.merge``; ConfigError naming any bad section, key or
    value. ``games=False`` skips checking that the game exists (which needs the env
    packages: the workflow's start-up check leaves that to the job)."""
    overrides = K.merge(_check_sections(hparams or {}, "--hparams"),
                        _check_sections(sets or {}, "--set"))
    # the loss's registered parameters, the values actually used (null = the default), and
    # the registered loss a named variant runs
    cell_loss = CellLoss.of("ppo", loss, overrides.get("loss"))
    env_values = {**base_env(env_name, overrides.get("env")), **(overrides.get("env") or {})}
    suite = env_values.pop("suite", None)
    if suite not in SUITES:
        raise ConfigError(f"env.suite must be one of {', '.join(SUITES)}, got {suite!r}")
    declared = P.RL_ENV[suite]
    env = {"suite": suite, **{k: p.default for k, p in declared.items()},
           **K.check_section("env", env_values, declared)}
    ppo = {**{k: p.default for k, p in P.PPO.items()}, **P.SUITE_PPO_DEFAULTS[suite],
           **K.check_section("ppo", overrides.get("ppo") or {}, P.PPO)}
    if suite == "procgen" and env["eval_start_level"] is None:
        env["eval_start_level"] = env["start_level"] + env["num_levels"]
    validate(env, ppo, games=games)
    return RLCell(env_name, EnvConfig.of(env), PPOConfig.from_mapping(ppo, "ppo"), cell_loss)


def validate(env: dict[str, Any], p: dict[str, Any], games: bool = True) -> None:
    """What one key's declaration cannot say: rules across keys, games that must exist."""

    sections = {"env": env, "ppo": p}

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"{key} must be {what}, got {sections[section][name]!r}")

    if env["game"] is None:
        raise ConfigError("env.game must be set for suite " + env["suite"])
    rollout = p["num_envs"] * p["num_steps"]
    need(p["total_steps"] % p["num_envs"] == 0, "ppo.total_steps",
         f"a multiple of ppo.num_envs ({p['num_envs']}) so that the run ends exactly on it")
    need(p["total_steps"] >= rollout, "ppo.total_steps",
         f"at least one rollout, ppo.num_envs * ppo.num_steps ({rollout})")
    need(p["num_minibatches"] <= rollout, "ppo.num_minibatches",
         f"at most num_envs * num_steps ({rollout})")
    # ale-py 0.12's AtariVectorEnv resets the whole game on a life loss when episodic_life
    # is on, which is not CleanRL's semantics (life loss terminal for learning only, game
    # continues): rejected rather than silently different.
    need(not env.get("episodic_life"), "env.episodic_life",
         "false (ale-py 0.12's vector env would reset the whole game at every life "
         "loss, unlike CleanRL's EpisodicLifeEnv; full-game episodes only)")
    if not games:
        return
    from scopeloss.rl.envs import suite_module  # the env packages: a job's, not the workflow's

    problem = suite_module(env["suite"]).game_problem(env["game"])
    need(problem is None, "env.game", problem or "")


def resolve_run(cell: RLCell, run: dict[str, Any] | None = None,
                sets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Resolved run settings for the run of ``cell``: the declared defaults,
    ``run`` (``--run``), then ``sets`` (``--set run.*``), every null replaced by its value
    on this machine (device, threads, checkpoint cadence). ConfigError naming a bad key.
    Resolving an already resolved mapping gives it back unchanged."""
    r = K.run_settings(run, sets, P.RL_RUN)
    suite = cell.env.suite
    if r["device"] == "auto":
        import torch

        r["device"] = "cuda" if suite in GPU_SUITES and torch.cuda.is_available() else "cpu"
    from scopeloss.devices import check_threads, job_cores  # torch: only the trainer

    check_threads(r, ("torch_threads", "env_threads"), "run")
    cores = job_cores()
    if r["torch_threads"] is None:
        # Gymnasium/MinAtar networks are too small for several threads to help: one is
        # faster per job (and a CPU grid then runs one job per core)
        r["torch_threads"] = cores if suite in GPU_SUITES else 1
    r["env_threads"] = min(r["env_threads"] or cores, cell.ppo.num_envs)
    if r["checkpoint_every"] is None:
        r["checkpoint_every"] = P.SUITE_TRAITS[suite].checkpoint_every
    return r


__all__ = ["ENV_TABLE", "SUITES", "RLCell", "resolve", "resolve_run", "validate"]
