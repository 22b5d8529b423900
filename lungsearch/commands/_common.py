"""Pieces every command shares: storage flags, quiet frameworks, user errors.

A user mistake is any exception whose class sets ``user_error = True``: the CLI
prints its message on one line and exits 2, with no traceback.  Each package
marks its own errors that way, so the CLI needs no import of them.
"""

from __future__ import annotations

import argparse
import os

DEFAULT_STORAGE = "sqlite:///studies.db"


def is_user_error(exc: BaseException) -> bool:
    return bool(getattr(exc, "user_error", False))


def storage_args(parser: argparse.ArgumentParser, *, study_help: str = "study name (default: the newest)",
                 with_study: bool = True, default: str | None = DEFAULT_STORAGE) -> None:
    parser.add_argument("--storage", default=default, help=f"Optuna storage URL (default {DEFAULT_STORAGE})")
    if with_study:
        parser.add_argument("--study", help=study_help)


def quiet_frameworks() -> None:
    """Keep TensorFlow's and Optuna's chatter out of the terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if not os.environ.get("LUNGSEARCH_TRACEBACK"):
        import logging

        logging.getLogger("optuna.study._optimize").addFilter(_one_line_failures)


def _one_line_failures(record) -> bool:
    """A failed trial's warning without its traceback: the reason is stored and printed on the trial's line."""
    if record.exc_info:
        record.exc_info, record.exc_text = None, None
        record.msg = f"{record.msg} (LUNGSEARCH_TRACEBACK=1 shows the traceback)"
    return True
