"""Write one benchmark's figures into bench/results.json under its own key."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")


def machine() -> str:
    return f"{platform.node() or 'host'}: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load() -> dict:
    """Everything recorded so far (an empty dict before the first record)."""
    if not os.path.isfile(RESULTS):
        return {}
    with open(RESULTS) as fh:
        return json.load(fh)


def record(key: str, figures: dict, *, command: str | None = None) -> dict:
    """Merge ``figures`` under ``key`` with the command, machine and date; returns the entry."""
    entry = {
        "command": command or "python -m " + " ".join(shlex.quote(a) for a in [_module(), *sys.argv[1:]]),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **figures,
    }
    data = {}
    if os.path.isfile(RESULTS):
        with open(RESULTS) as fh:
            data = json.load(fh)
    data[key] = entry
    with open(RESULTS, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return entry


def _module() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else os.path.basename(sys.argv[0])
