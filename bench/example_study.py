"""Make `studies.db.example` again: a real study on the Kermany data, with no absolute path in it.

    python -m bench.example_study            # runs COMMAND from the project folder, then makes its paths relative
    python -m bench.example_study --check    # exit 1 where the shipped file holds an absolute path

The study records the folders it used (``data.source``, ``artifacts``) as
absolute paths, which would name this machine's folders in a file that ships
with the project.  After the run, each such path is rewritten relative to the
project folder, from which the README's commands read it (``report``,
``best --retrain`` with the data at ``../shared/data``).  The models are not
shipped (the artifacts folder beside it is git-ignored), so ``report`` says
the database came without its models.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DB = "studies.db.example"
STUDY = "efficientnet-lite0-chest_xray"
COMMAND = ["lungsearch", "run", "--data", "../shared/data/chest_xray", "--space", "efficientnet-lite0", "--trials", "4",
           "--epochs", "3", "--storage", f"sqlite:///{DB}", "--study", STUDY, "--quiet"]
TABLES = ("study_user_attributes", "trial_user_attributes", "study_system_attributes", "trial_system_attributes")
ABSOLUTE = re.compile(r'"(/[^"]+)"')


def absolute_paths(db: str) -> list[tuple[str, str, str]]:
    """(table, key, path) for every absolute path stored in an attribute of ``db``."""
    with sqlite3.connect(db) as con:
        return [(table, key, m.group(1)) for table in TABLES
                for key, value in con.execute(f"SELECT key, value_json FROM {table}")
                for m in ABSOLUTE.finditer(value)]


def make_relative(db: str, root: str = ROOT) -> int:
    """Rewrite every absolute path in ``db``'s attributes relative to ``root``; returns how many values changed."""
    changed = 0
    with sqlite3.connect(db) as con:
        for table in TABLES:
            for rowid, value in con.execute(f"SELECT rowid, value_json FROM {table}").fetchall():
                new = ABSOLUTE.sub(lambda m: json.dumps(os.path.relpath(m.group(1), root)), value)
                if new != value:
                    con.execute(f"UPDATE {table} SET value_json = ? WHERE rowid = ?", (new, rowid))
                    changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.example_study", description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only check the shipped file for absolute paths")
    args = ap.parse_args(argv)
    path = os.path.join(ROOT, DB)
    if not args.check:
        if not os.path.isdir(os.path.join(ROOT, "..", "shared", "data", "chest_xray")):
            raise SystemExit("bench.example_study: ../shared/data/chest_xray is absent; it needs the Kermany data there")
        if os.path.exists(path):  # a fresh study, not more trials on the old one
            os.remove(path)
        exe = shutil.which("lungsearch", path=os.path.dirname(sys.executable)) or "lungsearch"
        start = time.perf_counter()
        subprocess.run([exe, *COMMAND[1:]], cwd=ROOT, check=True)
        print(f"{' '.join(COMMAND)}: {time.perf_counter() - start:.0f} s")
        print(f"{make_relative(path)} attribute values made relative to the project folder")
    left = absolute_paths(path)
    for table, key, found in left:
        print(f"{DB}: {table} {key} holds an absolute path: {found}")
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
