"""The exit code of a CLI's ``main``: its return value, or the code of the SystemExit its
argparse error raised (a bad argument: 2, the message on stderr, no traceback)."""

from __future__ import annotations


def exit_code(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code
