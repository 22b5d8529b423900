"""The worker supervisor: one GPU per worker, recycled processes, Ctrl-C passed on."""

from __future__ import annotations

import signal
import subprocess
import sys

from search import workers
from tests.conftest import wait_until


def test_each_worker_gets_one_gpu_round_robin_or_a_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    envs = [workers.worker_env(i, 3, ["4", "7"], cores=8) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["4", "7", "4"]
    assert [e["LUNGSEARCH_WORKER"] for e in envs] == ["1/3", "2/3", "3/3"]
    assert envs[0]["OMP_NUM_THREADS"] == "2" and envs[0]["TF_NUM_INTRAOP_THREADS"] == "2"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "CUDA_VISIBLE_DEVICES" not in workers.worker_env(0, 2, [], cores=2)


def test_workers_sharing_a_gpu_do_not_let_jax_preallocate_it(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    assert workers.worker_env(0, 4, ["0"])["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in workers.worker_env(0, 2, ["0", "1"])  # one GPU each
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    assert workers.worker_env(0, 4, ["0"])["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"  # the user's choice stands


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert workers.visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert workers.visible_gpus() == []


def test_recycled_workers_are_replaced_until_the_study_is_done(tmp_path):
    log = tmp_path / "starts"
    script = f"open({str(log)!r}, 'a').write('x'); raise SystemExit({workers.RECYCLE})"
    starts = lambda: len(log.read_text()) if log.exists() else 0
    code = workers.supervise([sys.executable, "-c", script], 2, keep_going=lambda: starts() < 5, poll=0.05)
    assert code == 0
    assert 5 <= starts() <= 6  # 2 first, then replacements while unfinished


def test_first_failing_worker_code_is_returned():
    assert workers.supervise([sys.executable, "-c", "raise SystemExit(3)"], 2, poll=0.05) == 3


def _started(folder):
    """A line of a worker script: it says it is running (its signal handlers set) by a file named after its pid."""
    return f"open(os.path.join({str(folder)!r}, str(os.getpid())), 'w').close()\n"


def test_sigterm_reaches_the_workers_and_the_run_reports_interrupted(tmp_path):
    # the sleep stands for a worker's long trial: the thing the signal interrupts, not a wait of the test
    script = f"import os, time\n{_started(tmp_path)}try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    raise SystemExit(130)"
    supervisor = subprocess.Popen([sys.executable, "-c", (
        "import sys, signal; from search import workers\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"sys.exit(workers.supervise([sys.executable, '-c', {script!r}], 2, poll=0.05))"
    )])
    wait_until(lambda: len(list(tmp_path.iterdir())) == 2, what="both workers to start")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 130


def test_a_worker_that_ignores_ctrl_c_is_terminated_then_killed_so_run_never_hangs(tmp_path):
    # a worker stuck on its way out ignores SIGINT and SIGTERM: after the grace period it is killed
    script = ("import os, signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              f"signal.signal(signal.SIGTERM, signal.SIG_IGN)\n{_started(tmp_path)}time.sleep(120)")  # stuck: what gets killed
    supervisor = subprocess.Popen([sys.executable, "-c", (
        "import sys, signal; from search import workers\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"sys.exit(workers.supervise([sys.executable, '-c', {script!r}], 1, poll=0.05, grace=1.0))"
    )])
    wait_until(lambda: any(tmp_path.iterdir()), what="the worker to start, ignoring SIGINT and SIGTERM")
    supervisor.send_signal(signal.SIGINT)  # kill -INT of the supervisor alone: it passes it on after 5 s
    assert supervisor.wait(timeout=30) == 130
