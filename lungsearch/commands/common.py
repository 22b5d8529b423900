"""Pieces every command shares: storage flags, quiet frameworks, user errors.

A user mistake is any exception whose class sets ``user_error = True``: the CLI
prints its message on one line and exits 2, with no traceback.  Each package
marks its own errors that way, so the CLI needs no import of them.  One that
can word its message (``worded``, the data layer's errors) names the settings
as this CLI's flags (:func:`user_message`).

``LUNGSEARCH_DEBUG=1`` leaves TensorFlow's and Optuna's own log lines (and
failed trials' tracebacks) as the frameworks print them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys

DEFAULT_STORAGE = "sqlite:///studies.db"
DEBUG_ENV = "LUNGSEARCH_DEBUG"
# Start-up lines TensorFlow's C++ logging writes to fd 2 while `import tensorflow` loads its libraries
# (twice: two libraries each log them).  They come before absl's logging is set up, so
# TF_CPP_MIN_LOG_LEVEL does not reach them under TensorFlow 2.21; TF_ENABLE_ONEDNN_OPTS=0 would,
# by switching oneDNN off.  Instead, what the import writes to fd 2 is read back without them.
TENSORFLOW_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|\] oneDNN custom operations are on\. "
)


def is_user_error(exc: BaseException) -> bool:
    return bool(getattr(exc, "user_error", False))


def flag(setting: str) -> str:
    """The flag that sets a run setting: ``image_size`` -> ``--image-size``."""
    return "--" + setting.replace("_", "-")


def user_message(exc: BaseException) -> str:
    """What the CLI says of an error or warning: the data layer's settings (``{image_size}``) worded as their flags."""
    worded = getattr(exc, "worded", None)
    return worded(flag) if callable(worded) else str(exc)


def storage_args(parser: argparse.ArgumentParser, *, study_help: str = "study name (default: the newest)",
                 with_study: bool = True, default: str | None = DEFAULT_STORAGE) -> None:
    parser.add_argument("--storage", default=default, help=f"Optuna storage URL (default {DEFAULT_STORAGE})")
    if with_study:
        parser.add_argument("--study", help=study_help)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up lines off stderr, whenever and by whom it is first imported.

    Cheap: nothing is imported here.  A finder on ``sys.meta_path`` wraps the
    first ``import tensorflow`` (Keras makes it) so that what the import writes
    to file descriptor 2 is written back without :data:`TENSORFLOW_NOISE`.
    """
    if debugging():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's later C++ info and warning lines
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


class _QuietTensorFlowImport:
    """Meta path finder for ``tensorflow`` alone: its module is executed under :func:`stderr_without`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; and the lookup below must not find this finder again
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with stderr_without(TENSORFLOW_NOISE):
            self.loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self.loader, name)


@contextlib.contextmanager
def stderr_without(noise: re.Pattern):
    """Send file descriptor 2 to a temporary file for the block, then write back its lines that are not ``noise``."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (closed, or a test's stand-in): leave it be
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not noise.search(line.rstrip("\n"))]
            if kept:
                os.write(2, "".join(kept).encode())


def quiet_frameworks() -> None:
    """Keep TensorFlow's and Optuna's chatter out of the terminal (all of it comes back with LUNGSEARCH_DEBUG=1)."""
    quiet_tensorflow()
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if debugging():
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import logging

    tf_logger = logging.getLogger("tensorflow")
    if _expected_retracing not in tf_logger.filters:
        tf_logger.addFilter(_expected_retracing)
    if not os.environ.get("LUNGSEARCH_TRACEBACK"):
        from search.optuna_private import FAILED_TRIAL_LOGGER

        logger = logging.getLogger(FAILED_TRIAL_LOGGER)
        if one_line_failures not in logger.filters:
            logger.addFilter(one_line_failures)


_VALUE_NONE = re.compile(r"^Trial \d+ failed with value None\.$")


def _expected_retracing(record) -> bool:
    """Drop TensorFlow's "N out of the last N calls ... triggered tf.function retracing" warning.

    Grad-CAM cuts a model into a feature part and a head (one of each per
    ensemble member), each a Keras model whose ``predict`` is traced once, as
    any new model's is.  TensorFlow counts those first traces of
    ``make_predict_function`` together and warns of a loop that is not there.
    """
    return "triggered tf.function retracing" not in record.getMessage()


def one_line_failures(record) -> bool:
    """A failed trial is one warning line, without traceback: the reason is stored and printed on the trial's line.

    A trial stopped by Ctrl-C says nothing here: the command prints one line
    that says so and how to resume.  Optuna's second line, ``Trial N failed
    with value None.``, says nothing a failure has not said already.
    """
    if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
        return False
    if isinstance(record.msg, str) and _VALUE_NONE.match(record.msg):
        return False
    if record.exc_info:
        record.exc_info, record.exc_text = None, None
        record.msg = f"{record.msg} (LUNGSEARCH_TRACEBACK=1 shows the traceback)"
    return True
