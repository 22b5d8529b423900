"""Image files to uint8 arrays (Pillow: EXIF, modes, resize), in threads, cached on disk by :mod:`lungsearch.cache`."""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from lungsearch import cache
from lungsearch.data.base import channels
from lungsearch.data.limits import check_memory

DECODER_VERSION = 1  # part of the cache key: bump when decode() changes what it produces


def decode(path: str, image_size: int, color_mode: str) -> np.ndarray:
    """One image file as (image_size, image_size, C) uint8; raises on a bad file."""
    with open(path, "rb") as fh:
        return _decode_bytes(fh.read(), image_size, color_mode)[0]


def _decode_bytes(raw: bytes, image_size: int, color_mode: str) -> tuple[np.ndarray, tuple[int, int], str]:
    """Pixels, original (width, height) and original mode of an encoded image."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(raw)) as img:
        size, mode = img.size, img.mode
        if img.format == "JPEG" and mode in ("L", "RGB"):
            img.draft(mode, (image_size, image_size))  # let the JPEG decoder downscale (DCT scaling): much faster
        img.load()  # raises on truncated data
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            arr = np.asarray(img, dtype=np.float64)
            top = float(arr.max()) if arr.size else 0.0
            bits = max(8, math.ceil(math.log2(top + 1))) if top > 0 else 8  # 12-bit data fills 0..255 too
            img = Image.fromarray(np.clip(arr * (255.0 / (2**bits - 1)), 0, 255).round().astype(np.uint8), mode="L")
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))  # X-ray background is black
            img = Image.alpha_composite(background, img)
        img = img.convert("L" if color_mode == "grayscale" else "RGB")
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return (arr[..., None] if arr.ndim == 2 else arr), size, mode


_BUFFER = re.compile(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>")


def reason(exc: BaseException) -> str:
    """``Type: message`` of a decoding error, without the ``<_io.BytesIO object at 0x...>`` Pillow names instead of the file."""
    return f"{type(exc).__name__}: {_BUFFER.sub('', str(exc))}"


def _read_one(path: str, image_size: int, color_mode: str) -> dict:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    digest = hashlib.sha1(raw).hexdigest()
    if not raw:
        return {"error": "empty file (0 bytes)", "sha1": digest}
    try:
        arr, size, mode = _decode_bytes(raw, image_size, color_mode)
    except Exception as exc:  # Pillow raises many kinds on a bad file; skip it, say so
        return {"error": reason(exc), "sha1": digest}
    return {"x": arr, "sha1": digest, "size": size, "mode": mode}


def thread_count() -> int:
    """Threads for decoding and hashing files: the CPUs this process may use (Pillow and hashlib release the GIL)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def decode_all(paths: list[str], image_size: int, color_mode: str, desc: str = "decoding") -> tuple[np.ndarray, list[int], list[str]]:
    """Decode many files: (images, indices decoded, paths skipped as unreadable)."""
    x, meta = _decode_many(paths, image_size, color_mode, desc)
    return x, meta["kept"], [f"{paths[i]} ({why})" for i, why in meta["skipped"]]


def _decode_many(paths: list[str], image_size: int, color_mode: str, desc: str) -> tuple[np.ndarray, dict]:
    """Decode in threads (Pillow releases the GIL while decoding and resizing), with a progress bar."""
    from tqdm.auto import tqdm

    c = channels(color_mode)
    x = np.zeros((len(paths), image_size, image_size, c), np.uint8)
    kept, skipped, hashes, sizes, modes = [], [], [], [], []
    pool = ThreadPoolExecutor(max_workers=thread_count())
    try:
        results = pool.map(lambda p: _read_one(p, image_size, color_mode), paths)
        for i, r in enumerate(tqdm(results, total=len(paths), desc=desc, unit="img", leave=False, disable=True if len(paths) < 200 else None)):
            hashes.append(r.get("sha1"))
            if "error" in r:
                skipped.append([i, r["error"]])
                sizes.append(None)
                modes.append(None)
                continue
            x[len(kept)] = r["x"]
            kept.append(i)
            sizes.append(list(r["size"]))
            modes.append(r["mode"])
    finally:  # on Ctrl-C, do not wait for the queued files
        pool.shutdown(wait=False, cancel_futures=True)
    meta = {"kept": kept, "skipped": skipped, "sha1": hashes, "sizes": sizes, "modes": modes}
    return x[: len(kept)], meta


@dataclass(frozen=True)
class Decoded:
    """The decoded images of a file list: ``x[j]`` is ``paths[kept[j]]``."""

    paths: list[str]
    x: np.ndarray  # memory-mapped from the cache
    kept: list[int]
    skipped: list[str]  # "path (reason)"
    sha1: list[str | None]  # per path; None where the file could not be read
    sizes: list  # per path: [width, height] of the original, or None
    modes: list  # per path: Pillow mode of the original, or None
    cache_hit: bool
    fingerprint: str


def decode_cached(paths: list[str], image_size: int, color_mode: str, *, cache_dir: str | None = None,
                  desc: str = "decoding", group: str | None = None, processes: int = 1) -> Decoded:
    """Decode ``paths`` once; later calls (any process) load the cached arrays memory-mapped.

    Refused first where they cannot fit in memory, held by each of ``processes`` processes (:func:`check_memory`).
    """
    check_memory(image_size, len(paths), color_mode, processes)
    key = cache.file_fingerprint(paths, image_size, color_mode, DECODER_VERSION)

    def build():
        x, meta = _decode_many(paths, image_size, color_mode, desc)
        return {"x": x}, meta

    entry = cache.cached(key, build, cache_dir, group=f"{group}|{image_size}|{color_mode}" if group else None)
    meta = entry.meta
    return Decoded(
        paths=paths, x=entry.arrays["x"], kept=list(meta["kept"]),
        skipped=[f"{paths[i]} ({why})" for i, why in meta["skipped"]],
        sha1=meta["sha1"], sizes=meta["sizes"], modes=meta["modes"], cache_hit=entry.hit, fingerprint=key,
    )


def summarize_modes(decoded: Decoded) -> dict:
    """Counts of original image sizes and modes of the readable files."""
    sizes = Counter(f"{w}x{h}" for w, h in (s for s in decoded.sizes if s))
    modes = Counter(m for m in decoded.modes if m)
    return {"sizes": dict(sizes.most_common()), "modes": dict(modes.most_common())}
