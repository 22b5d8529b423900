"""`lungsearch run --workers N`: start N worker processes on one study, recycle them, and wait.

Each worker is ``lungsearch run --worker`` on the resolved config written to
a temporary TOML file; the whole run's deadline and start time travel in the
environment, so a recycled worker neither restarts the timeout nor the ETA.
"""

from __future__ import annotations

import os
import sys

from lungsearch.commands._run_study import resume_line, summarise
from lungsearch.commands._run_trials import DEADLINE_ENV, STARTED_ENV, STOP_ENV


def supervise(config, storage, *, quiet: bool = False, stop_trials: bool = False, next_lines: bool = True) -> int:
    """Start config.workers worker processes on one study and wait for them (recycling each as asked).

    ``stop_trials``: the deadline also stops the trials still training then (see :func:`~lungsearch.commands._run_trials.work`).
    """
    import tempfile
    import time

    import optuna

    import search
    from lungsearch.config import write_toml

    name = config.study_name

    deadline = None if config.timeout is None else time.time() + config.timeout

    def unfinished() -> bool:
        if deadline is not None and time.time() >= deadline:
            return False
        try:
            return search.count_finished(optuna.load_study(study_name=name, storage=storage)) < config.trials
        except KeyError:  # no worker has created the study yet
            return True

    print(f"study {name!r} in {config.storage}: {config.workers} worker process(es)"
          + (f", each replaced after {config.recycle} trials" if config.recycle else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="lungsearch-run-") as tmp:
        path = os.path.join(tmp, "config.toml")
        write_toml(config, path)
        command = search.workers.python_module_command("lungsearch", "run", "--config", path, "--worker", *(["--quiet"] if quiet else []))
        # --timeout is the whole run's, also across recycled workers: they get the deadline, not a fresh timeout
        extra = {STARTED_ENV: repr(time.time())}
        if deadline is not None:
            extra[DEADLINE_ENV] = repr(deadline)
            if stop_trials:
                extra[STOP_ENV] = "1"
        code = search.workers.supervise(command, config.workers, keep_going=unfinished, extra_env=extra)
    if code == search.workers.INTERRUPTED:
        print(f"\ninterrupted: running trials are marked FAIL, finished trials are kept; {resume_line(config)}", file=sys.stderr)
        return code
    if code == 0:
        summarise(optuna.load_study(study_name=name, storage=storage), config, next_lines=next_lines)
    return code
