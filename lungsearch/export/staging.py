"""Write an export's files beside their targets and move them into place together, or not at all.

Everything an export writes (the model, its JSON, the evaluation files) goes
into a hidden folder in the target's own folder (so the final move is a rename
on one file system); only once every check has passed are the files moved over
the old ones, with Ctrl-C and SIGTERM held back for those few renames.  A
failure or an interruption before then removes the staging folder and leaves
the earlier export byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile

from lungsearch.export.base import ExportError

PREFIX = ".lungsearch-export-"


class Staging:
    """``with Staging([dir_a, dir_b]) as stage:`` write into ``stage.folder(dir_a)``; ``stage.commit()`` moves it all."""

    def __init__(self, targets: list[str]):
        self.targets = list(dict.fromkeys(os.path.abspath(t) for t in targets))  # unique, in order
        self.folders: dict[str, str] = {}

    def __enter__(self) -> "Staging":
        for target in self.targets:
            try:
                os.makedirs(target, exist_ok=True)
                self.folders[target] = tempfile.mkdtemp(prefix=PREFIX, dir=target)
            except OSError as exc:
                self._remove()
                raise ExportError(f"cannot write into {target} ({exc.strerror or exc}); choose a folder you can write to") from None
        return self

    def __exit__(self, *exc) -> None:
        self._remove()

    def folder(self, target: str) -> str:
        return self.folders[os.path.abspath(target)]

    def final(self, staged: str) -> str:
        """Where the staged file ``staged`` will land."""
        for target, folder in self.folders.items():
            if os.path.dirname(os.path.abspath(staged)) == folder:
                return os.path.join(target, os.path.basename(staged))
        raise ValueError(f"{staged} is not a staged file")

    def commit(self) -> list[str]:
        """Move every staged file over its target (renames only; Ctrl-C and SIGTERM wait until they are done)."""
        moved = []
        blocked = {signal.SIGINT, signal.SIGTERM}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            for target, folder in self.folders.items():
                for name in sorted(os.listdir(folder)):
                    os.replace(os.path.join(folder, name), os.path.join(target, name))
                    moved.append(os.path.join(target, name))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return moved

    def _remove(self) -> None:
        for folder in self.folders.values():
            shutil.rmtree(folder, ignore_errors=True)


def sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
