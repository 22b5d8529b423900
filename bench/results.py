"""Write one benchmark's figures into bench/results.json under its own key.

Two rules hold for everything written here:

- Paths are recorded relative, never absolute, so the file reads the same from
  any checkout on any machine (``relative_paths``).
- A reduced run (figures with ``"reduced": True``) goes under ``<key>_reduced``,
  so it can never overwrite a full-size run's figures (``reduced_key``).

    python -m bench.results --relative [--root DIR ...]   # rewrite the paths already in the file
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import sys
import tempfile
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(PROJECT, "bench", "results.json")

# An absolute path inside a string: a "/" that starts a word (after a space, "=", a quote, "(" ...), or the
# fourth slash of an SQLAlchemy URL to an absolute file ("sqlite:////tmp/x.db"); it ends at a space, quote,
# comma or bracket.  "https://host/x", "n/a", "~/x", "<tmp>/x" and "../x" are not absolute paths.
_ABSOLUTE = re.compile(r"(?:(?<=:///)|(?<![\w.~/<>]))/[\w.@%+~-]+(?:/[\w.@%+~-]+)*/?")


def machine() -> str:
    return f"{platform.node() or 'host'}: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def now() -> str:
    """The time in UTC as the records write it."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def load() -> dict:
    """Everything recorded so far (an empty dict before the first record)."""
    if not os.path.isfile(RESULTS):
        return {}
    with open(RESULTS) as fh:
        return json.load(fh)


def record(key: str, figures: dict, *, command: str | None = None) -> dict:
    """Merge ``figures`` under ``key`` (``reduced_key``) with the command, machine and date, paths made relative; returns the entry."""
    key = reduced_key(key, figures)
    entry = stamp(figures, command=command)
    write(key, entry)
    return entry


def stamp(figures: dict, *, command: str | None = None) -> dict:
    """``figures`` with the command, machine and date, every path in them made relative (``relative_paths``)."""
    return relative_paths({
        "command": command or "python -m " + " ".join(shlex.quote(a) for a in [_module(), *sys.argv[1:]]),
        "machine": machine(),
        "date": now(),
        **figures,
    })


def write(key: str, value) -> None:
    """Set ``key`` of bench/results.json to ``value``, the other keys left as they are."""
    data = load()
    data[key] = value
    save(data)
    print(f"bench/results.json: recorded under key {key!r}", file=sys.stderr, flush=True)


def save(data: dict) -> None:
    """Write ``data`` as the whole of bench/results.json (sorted keys, so a diff shows only what changed)."""
    with open(RESULTS, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


def reduced_key(key: str, figures: dict) -> str:
    """Where a run's figures go: ``key + "_reduced"`` when they say ``"reduced": True`` (once: a key that
    already ends in ``_reduced`` stays), otherwise ``key``.  So a reduced run never overwrites a full-size one."""
    return key + "_reduced" if figures.get("reduced") and not key.endswith("_reduced") else key


def below_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> bool:
    """Whether any of these flags asks for less than its default: a smaller number, a limit
    (``--train-limit``) where the default has none, or fewer of the default's items (a
    comma-separated list such as ``--pruners``, or a list of positional names).  A bench's
    defaults are its full size."""
    for name in names:
        default, value = parser.get_default(name), getattr(args, name)
        if isinstance(default, (str, list)):
            items = lambda v: set(v.split(",") if isinstance(v, str) else v)  # noqa: E731
            if items(value) < items(default):
                return True
        elif value is not None and (default is None or value < default):
            return True
    return False


def resumable(key: str, settings: dict) -> list[dict]:
    """For ``--resume``: the ``seeds`` list recorded under ``key`` by an earlier run with the same ``settings``
    (every one equal to the record's), so that a bench longer than one session is done in several: the units
    it finished are kept, the rest run.  [] where nothing is recorded; a record made with other settings is an
    error, since resuming it would mix two benches."""
    entry = load().get(key)
    if not entry:
        return []
    for name, value in relative_paths(settings).items():  # as the record has them
        if entry.get(name) != value:
            raise SystemExit(f"--resume: the record under {key!r} has {name} {entry.get(name)!r}, this run "
                             f"{value!r}; give the flags it was made with, or leave out --resume to start it again")
    return entry.get("seeds", [])


def fits(start: float, hours: float | None, seconds: float) -> bool:
    """Whether work of about ``seconds`` started now ends within ``hours`` of ``start`` (``time.monotonic()``);
    always, without ``hours``."""
    return hours is None or time.monotonic() - start + seconds <= hours * 3600


def path_roots(project: str = PROJECT, *, others: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The folders ``relative_paths`` knows, each as ``(folder, what it becomes)``, longest first:

    - the project (and ``others``: other checkouts of it) -> ``""``: paths relative to the project;
    - the shared folder beside it (``<project>/../shared``, which holds ``data/``) -> ``../shared``;
    - the temporary folder (``tempfile.gettempdir()`` and ``/tmp``) -> ``<tmp>``;
    - the home folder -> ``~``.

    Each folder is listed as given and as its ``os.path.realpath``, so a project reached
    through a symbolic link is still recognised.  The project and the shared folder come
    before the temporary and home folders (a project may live in either)."""
    named = [(p, "") for p in (project, *others)]
    named.append((os.path.join(project, "..", "shared"), "../shared"))
    named += [(tempfile.gettempdir(), "<tmp>"), ("/tmp", "<tmp>"), (os.path.expanduser("~"), "~")]
    roots = {}
    for folder, label in named:
        for form in (os.path.normpath(os.path.abspath(folder)), os.path.realpath(folder)):
            if form != os.sep:  # a home of "/" would swallow every path
                roots.setdefault(form, label)
    return sorted(roots.items(), key=lambda kv: (kv[1] in ("<tmp>", "~"), -len(kv[0])))


def relative_paths(value, roots: list[tuple[str, str]] | None = None):
    """``value`` (a str, or dicts and lists of them, keys included) with every absolute path in it made relative.

    Paths are found inside longer strings too (command lines, ``sqlite:////...`` URLs,
    sentences).  A path under one of ``roots`` (default ``path_roots()``) becomes that root's
    label and the rest: ``/work/lungsearch/bench/hand_cnn.py`` -> ``bench/hand_cnn.py``,
    ``/work/shared/data/chest_xray`` -> ``../shared/data/chest_xray``, ``/tmp/vs_hand-x/a.db``
    -> ``<tmp>/vs_hand-x/a.db``, ``/root/.cache/x`` -> ``~/.cache/x``.  Each root is tried in
    ``roots``' order, against the path as written and then its ``realpath``.  Any other absolute path is marked ``<abs>/...``: it names
    a place on the machine that ran the bench, not in the project.  The input is not changed."""
    roots = path_roots() if roots is None else roots
    if isinstance(value, str):
        return _ABSOLUTE.sub(lambda m: _relative(m.group(0), roots), value)
    if isinstance(value, dict):
        return {relative_paths(k, roots): relative_paths(v, roots) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [relative_paths(v, roots) for v in value]
    return value


def _relative(path: str, roots: list[tuple[str, str]]) -> str:
    slash = "/" if path.endswith("/") and len(path) > 1 else ""
    given = os.path.normpath(path)
    for folder, label in roots:
        for form in (given, os.path.realpath(given)):
            if form == folder or form.startswith(folder + os.sep):
                rest = form[len(folder) + 1:]
                return (os.path.join(label, rest) if label and rest else label or rest or ".") + slash
    return "<abs>" + given + slash


def _module() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "bench.__main__":  # `python -m bench NAME` sets argv[0] to bench.NAME
        return sys.argv[0]
    return spec.name if spec is not None else os.path.basename(sys.argv[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Rewrite bench/results.json with every absolute path made relative (figures unchanged).")
    ap.add_argument("--relative", action="store_true", help="do it (without it: say what would change, write nothing)")
    ap.add_argument("--root", action="append", default=[], metavar="DIR",
                    help="another checkout of this project whose paths count as the project's (the one a stored run was made in)")
    args = ap.parse_args(argv)
    data = load()
    rewritten = relative_paths(data, path_roots(others=tuple(args.root)))
    before = json.dumps(data, indent=2, sort_keys=True).splitlines()
    after = json.dumps(rewritten, indent=2, sort_keys=True).splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    for a, b in changed:
        print(f"- {a.strip()}\n+ {b.strip()}")
    if args.relative and changed:
        save(rewritten)
    print(f"{len(changed)} line(s) {'rewritten' if args.relative else 'would change (pass --relative to write them)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
