"""CLI: ``python -m scopeloss.rl.train --env NAME --loss LOSS --seed N --out DIR
[--hparams JSON] [--set section.key=value ...]``.

``--hparams`` is an inline JSON object or a path to a .json file holding the cell's
resolved ``{"env": ..., "ppo": ..., "loss": ...}`` (docs/CONTRACT.md); ``--set`` overrides
single keys (value parsed as YAML). Everything is validated before any env is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scopeloss.rl.config import merge, parse_set, resolve


def load_hparams(text: str | None) -> dict:
    if not text:
        return {}
    src = text.strip()
    if not src.startswith(("{", "[")):
        path = Path(src)
        if not path.is_file():
            raise ValueError(f"--hparams {text!r} is neither a JSON object nor an existing file")
        src = path.read_text()
    try:
        value = json.loads(src)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--hparams is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--hparams must be a JSON object, got {type(value).__name__}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scopeloss.rl.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="Pong, Breakout, ..., StarPilot, or a Gymnasium id")
    parser.add_argument("--loss", required=True, help="policy, policy_entropy, scope or focal")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--hparams", help="inline JSON object or path to a .json file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one hyperparameter (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from scopeloss.rl.ppo import check_out_dir, train  # torch import after argument parsing

    try:
        if args.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
        check_out_dir(args.out)
        overrides = merge(load_hparams(args.hparams), parse_set(args.set))
        hp = resolve(args.env, args.loss, overrides)
    except ValueError as exc:
        parser.error(str(exc))
    train(hp, env_name=args.env, loss=args.loss, seed=args.seed, out_dir=args.out,
          log=lambda msg: print(msg, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
