"""CLI: ``python -m scopeloss.rl.train --env NAME --loss LOSS --seed N --out DIR
[--hparams JSON] [--run JSON] [--set section.key=value ...] [--loss-module M ...]``.

``--hparams`` is an inline JSON object or a path to a .json file holding the cell's
resolved ``{"env": ..., "ppo": ..., "loss": ...}`` (docs/CONTRACT.md): what it learns.
``--run`` (same format) holds the run settings, how and where it runs: ``device``,
``compile``, ``torch_threads``, ``env_threads``, ``checkpoint_every``, ``tensorboard``;
changing them keeps the checkpoint valid. ``--set`` overrides single keys of either
(``ppo.lr=3e-4``, ``run.device=cpu``; value parsed as YAML). Everything is validated
before any env is built. ``--loss-module`` (repeatable) imports a module that registers
losses of your own (``scopeloss.registry``), so that ``--loss`` can name them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scopeloss import lifecycle

if __name__ == "__main__":  # Ctrl-C and SIGTERM honoured from here on, through every import
    lifecycle.catch_signals_early()

from scopeloss import registry  # noqa: E402
from scopeloss.overrides import load_hparams, load_run, parse_set, split_run  # noqa: E402
from scopeloss.rl.config import resolve, resolve_run  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.rl.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="Pong, Breakout, ..., StarPilot, or a Gymnasium id")
    parser.add_argument("--loss", required=True, help="a registered PPO policy loss (built-in: "
                        f"{', '.join(registry.names('ppo'))}; or one of a --loss-module)")
    parser.add_argument("--loss-module", action="append", default=[], metavar="PATH_OR_MODULE",
                        help="a module that registers losses of your own (repeatable)")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--hparams", help="inline JSON object or path to a .json file")
    parser.add_argument("--run", help="run settings: inline JSON object or path to a .json file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one hyperparameter or run.KEY setting (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from scopeloss.devices import resolve_device  # torch import after argument parsing
    from scopeloss.config_keys import ConfigError, check_seed
    from scopeloss.rl.ppo import train
    from scopeloss.params import RLRunConfig

    lifecycle.imports_done()

    try:  # every bad argument: argparse's error (exit 2, no traceback), as the classifier CLI
        check_seed(args.seed, "--seed")
        registry.load_modules(args.loss_module, "--loss-module")
        sets, run_sets = split_run(parse_set(args.set))
        cell = resolve(args.env, args.loss, load_hparams(args.hparams), sets)
        run = RLRunConfig.from_mapping(resolve_run(cell, load_run(args.run), run_sets), "run")
        resolve_device(run.device, "run.device")  # 'cuda' on a machine without one
    except ValueError as exc:
        parser.error(str(exc))
    lifecycle.stop_with_launcher(lifecycle.log)
    try:
        return lifecycle.trainer_exit_code(
            lambda: train(cell, seed=args.seed, out=args.out, run=run), "update")
    except ConfigError as err:  # --out checked by the run's start, before anything is built
        parser.error(str(err))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before training began (imports, argument checks)
        line, code = lifecycle.outside_the_loop("update")
        print(line, file=sys.stderr)
        sys.exit(code)
