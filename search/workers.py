"""Run N worker processes of one study on this machine, and keep them running.

Each worker is a separate process (its own Keras session, its own memory) that
runs the ordinary trial loop against the shared storage; the storage is the
only thing they share.  Where the machine has several GPUs, each worker sees
one (``CUDA_VISIBLE_DEVICES``), round robin.  On CPU the cores are split
between workers so they do not fight over the same threads.

A worker that exits with :data:`RECYCLE` has run its share of trials and is
replaced by a fresh process (memory back to a clean start).  Ctrl-C reaches
every worker through the terminal's process group; each one fails its current
trial and exits, and :func:`supervise` waits for them.  SIGTERM to the
supervisor is passed on to the workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, Sequence

RECYCLE = 75  # exit code of a worker that stopped to be replaced (EX_TEMPFAIL)
INTERRUPTED = 130


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def worker_env(index: int, workers: int, gpus: Sequence[str], cores: int | None = None) -> dict[str, str]:
    """The environment of worker ``index``: its GPU, or its share of the CPU cores."""
    env = dict(os.environ)
    env["LUNGSEARCH_WORKER"] = f"{index + 1}/{workers}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        if workers > len(gpus):
            # several workers share a GPU: JAX would take 75% of it in the first process and fail the others
            env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    threads = str(max(1, (cores or os.cpu_count() or 1) // workers))
    for key in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env.setdefault(key, threads)
    env.setdefault("TF_NUM_INTEROP_THREADS", "1" if workers > 1 else threads)
    return env


def supervise(
    command: Sequence[str],
    workers: int,
    *,
    keep_going: Callable[[], bool] = lambda: True,
    poll: float = 0.5,
    extra_env: dict[str, str] | None = None,
    grace: float = 30.0,
) -> int:
    """Run ``workers`` copies of ``command`` until all have finished; returns an exit code.

    A worker exiting with :data:`RECYCLE` is restarted while ``keep_going()``.
    Returns 130 after Ctrl-C or SIGTERM, else the first non-zero worker exit
    code, else 0.  After a Ctrl-C, a worker still running ``grace`` seconds
    after it was passed on is sent SIGTERM, and SIGKILL ``grace / 3`` later.
    """
    gpus = visible_gpus()
    procs: dict[int, subprocess.Popen] = {}
    codes: list[int] = []
    interrupted = False
    terminated = False
    forward_at = None  # when to pass a Ctrl-C on to workers that did not get it themselves
    escalate_at = None  # when a worker still alive after that is terminated, then killed
    escalations = [signal.SIGTERM, signal.SIGKILL]

    def start(i: int) -> None:
        env = {**worker_env(i, workers, gpus), **(extra_env or {})}
        procs[i] = subprocess.Popen(list(command), env=env, preexec_fn=_die_with_parent)

    def on_term(signum, _frame):
        nonlocal terminated
        terminated = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for i in range(workers):
            start(i)
        while procs:
            try:
                for i, proc in list(procs.items()):
                    rc = proc.poll()
                    if rc is None:
                        continue
                    del procs[i]
                    if rc == RECYCLE and not interrupted and keep_going():
                        start(i)
                    elif rc != RECYCLE:
                        codes.append(rc)
                if forward_at is not None and time.monotonic() >= forward_at:
                    forward_at, escalate_at = None, time.monotonic() + grace
                    for proc in procs.values():
                        proc.send_signal(signal.SIGINT)
                elif escalate_at is not None and escalations and time.monotonic() >= escalate_at:
                    # a worker that neither failed its trial nor exited (stuck in native code, say)
                    # must not hang `run`: terminate it, then kill it; a trial left RUNNING is
                    # failed by its stale heartbeat when the study is resumed
                    sig, escalate_at = escalations.pop(0), time.monotonic() + grace / 3
                    for proc in procs.values():
                        proc.send_signal(sig)
                time.sleep(poll)
            except KeyboardInterrupt:
                # Ctrl-C in a terminal reached the workers too (one process group): give them a
                # moment to fail their trials cleanly, and only then pass it on (kill -INT of
                # this process alone).  A SIGTERM reached only this process: pass it on now.
                interrupted = True
                if terminated:
                    for proc in procs.values():
                        proc.send_signal(signal.SIGTERM)
                elif forward_at is None:
                    forward_at = time.monotonic() + 5.0
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in procs.values():  # only on an unexpected error: leave no orphan behind
            if proc.poll() is None:
                proc.terminate()
    if interrupted or INTERRUPTED in codes or -signal.SIGINT in codes:
        return INTERRUPTED
    return next((c for c in codes if c != 0), 0)


def _die_with_parent() -> None:
    """In the worker, before exec: on Linux, be killed when the supervisor dies (even by kill -9).

    Otherwise a killed ``lungsearch run`` would leave its workers training on
    as orphans; this way their trials go stale and are retried on the next run.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # no glibc (musl): workers then outlive a killed supervisor
        pass


def python_module_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
