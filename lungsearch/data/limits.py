"""Image sizes that cannot work: the fixed bounds (checked by the config) and the memory available now (checked before decoding)."""

from __future__ import annotations

import math
import os

from lungsearch.data.base import DataError, channels

MIN_IMAGE_SIZE = 8
# Largest --image-size: the spaces are made for 64-224 px, and at 1024 px one batch of 32 through a
# 32-filter first convolution is 4.3 GB of float32 activations already; larger only ends out of memory.
MAX_IMAGE_SIZE = 1024
# A process that trains holds its decoded images about this many times over, as uint8: the decoding
# buffer (or the memory-mapped cache), the train/validation copies, and the backend's copy while it fits.
COPIES_WHILE_TRAINING = 3


def check_memory(image_size: int, images: int, color_mode: str = "grayscale", processes: int = 1) -> None:
    """Refuse, before any decoding, ``images`` at ``image_size`` that cannot fit: :class:`DataError` saying what fits.

    The images, decoded in each of ``processes`` processes, must fit the memory
    available now (an estimate: :data:`COPIES_WHILE_TRAINING` uint8 copies a
    process).  The fixed bounds (:data:`MIN_IMAGE_SIZE`, :data:`MAX_IMAGE_SIZE`)
    are the config's to check, once, when it is resolved.
    """
    available = available_memory() if images else None
    if not available:
        return
    per_pixel = images * channels(color_mode) * COPIES_WHILE_TRAINING * max(1, processes)
    need = per_pixel * image_size**2
    if need > available:
        fits = int(math.sqrt(available / per_pixel)) // 8 * 8
        who = f"{processes} worker processes" if processes > 1 else "one process"
        raise DataError(f"{{image_size}} {image_size} needs about {need / 1e9:.1f} GB for {images:,} {color_mode} images "
                        f"({image_size}x{image_size} uint8, held about {COPIES_WHILE_TRAINING} times over while training, by {who}) "
                        f"and {available / 1e9:.1f} GB of memory is available; "
                        + (f"use {{image_size}} {fits} or less" if fits >= MIN_IMAGE_SIZE else "free memory or use fewer images")
                        + (" or fewer {workers}" if processes > 1 else ""))


def available_memory() -> int | None:
    """Bytes of memory available to this process now (MemAvailable, capped by a cgroup limit); None if unknown."""
    found = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not on this system
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        if limit.isdigit():
            found = min(found, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return found
