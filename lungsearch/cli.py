"""The ``lungsearch`` command.  Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from lungsearch import __version__
from lungsearch.commands import COMMANDS
from lungsearch.commands.common import is_user_error, quiet_tensorflow, user_message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lungsearch", description="Hyperparameter search for chest X-ray classifiers.")
    parser.add_argument("--version", action="version", version=f"lungsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one of lungsearch's own lines: ``warning: <its first line>``, without file, line or source."""
    text = (user_message(message).strip().splitlines() or [category.__name__])[0]
    try:
        print(f"warning: {text}", file=file or sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed
        pass


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()  # before any command imports Keras: TensorFlow's start-up lines stay off stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():  # restored on return: a caller's own warning handling is left as it was
            warnings.showwarning = show_warning
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")  # matplotlib: a box is drawn instead
            return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lungsearch spaces | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"lungsearch: error: {user_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
