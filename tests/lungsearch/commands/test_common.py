"""What the commands print on stderr: lungsearch's own lines, not the frameworks' start-up chatter."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from lungsearch.commands import common

ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = ("I0000 00:00:1796171955.799733    8036 port.cc:153] oneDNN custom operations are on. You may see slightly "
          "different numerical results due to floating-point round-off errors from different computation orders.")

# A stand-in for TensorFlow: its import writes to file descriptor 2 from below Python, as TensorFlow's C++ does.
FAKE_TENSORFLOW = f"""
import os
os.write(2, {(ABSL + chr(10) + ONEDNN + chr(10) + "a real problem" + chr(10)).encode()!r})
VALUE = 42
"""


def _import_fake_tensorflow(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TENSORFLOW)
    code = ("from lungsearch.commands.common import quiet_tensorflow\n"
            "quiet_tensorflow()\n"
            "import tensorflow\n"
            "print(tensorflow.VALUE)\n")
    environ = {k: v for k, v in os.environ.items() if k != common.DEBUG_ENV}
    environ.update(PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)


def test_tensorflow_start_up_lines_are_dropped_and_other_lines_kept(tmp_path: Path) -> None:
    proc = _import_fake_tensorflow(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"
    assert proc.stderr.splitlines() == ["a real problem"]


def test_lungsearch_debug_brings_them_back(tmp_path: Path) -> None:
    proc = _import_fake_tensorflow(tmp_path, LUNGSEARCH_DEBUG="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [ABSL, ONEDNN, "a real problem"]


def _record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1, msg, None, exc_info)


def test_an_interrupted_trial_leaves_the_line_to_the_command() -> None:
    params = {f"filters_b{i}": 8 for i in range(20)}
    assert not common.one_line_failures(_record(f"Trial 1 failed with parameters: {params} because of the "
                                                  "following error: KeyboardInterrupt().", KeyboardInterrupt()))
    assert not common.one_line_failures(_record("Trial 1 failed with value None."))


def test_a_failed_trial_is_one_line_without_traceback() -> None:
    record = _record("Trial 2 failed with parameters: {'units': 4} because of the following error: "
                     "ValueError('bad').", ValueError("bad"))
    assert common.one_line_failures(record)
    assert record.exc_info is None and "LUNGSEARCH_TRACEBACK=1" in record.getMessage()
    assert common.one_line_failures(_record("Trial 2 failed with value nan."))  # a value says something


def test_tensorflow_retracing_warning_is_dropped_and_its_other_warnings_kept(monkeypatch) -> None:
    monkeypatch.delenv(common.DEBUG_ENV, raising=False)
    logger = logging.getLogger("tensorflow")
    monkeypatch.setattr(logger, "filters", list(logger.filters))  # the filter added here leaves with the test
    common.quiet_frameworks()
    retracing = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "5 out of the last 5 calls to <function "
                                  "TensorFlowTrainer.make_predict_function.<locals>.one_step_on_data_distributed> "
                                  "triggered tf.function retracing. Tracing is expensive ...", None, None)
    other = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "something else", None, None)
    assert not logger.filter(retracing)
    assert logger.filter(other)
