"""Where lungsearch keeps what it makes once and reuses: one answer for spaces/ and lungsearch/.

spaces/ cannot import lungsearch/, so the cache folder's default lives here
(no imports beyond the standard library, so ``lungsearch --help`` stays instant).
"""

from __future__ import annotations

import os
import sys

CACHE_ENV = "LUNGSEARCH_CACHE_DIR"


def default_cache_dir() -> str:
    """``$LUNGSEARCH_CACHE_DIR``, else the platform's per-user cache folder + ``/lungsearch``."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "lungsearch")
