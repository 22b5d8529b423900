"""``lungsearch data download pneumoniamnist``: MedMNIST's PneumoniaMNIST as class folders.

The published files (MedMNIST v2 / MedMNIST+, Zenodo record 10519652, CC BY
4.0) are ``.npz`` archives with ``{train,val,test}_images`` (N, S, S) uint8 and
``{train,val,test}_labels`` (N, 1), 0 = normal, 1 = pneumonia.  They are
checked against the MD5 that the ``medmnist`` package records, then written
as layout (a): ``OUT/{train,val,test}/{NORMAL,PNEUMONIA}/<index>.png``.  Its val
split (524 images) is large enough to be used as given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request

import numpy as np

RECORD = "https://zenodo.org/records/10519652/files"
# size -> (file name, MD5), as in medmnist.INFO["pneumoniamnist"] (medmnist 3.0)
PNEUMONIAMNIST = {
    28: ("pneumoniamnist.npz", "28209eda62fecd6e6a2d98b1501bb15f"),
    64: ("pneumoniamnist_64.npz", "8f4eceb4ccffa70c672198ea285246c6"),
    128: ("pneumoniamnist_128.npz", "05b46931834c231683c68f40c47b2971"),
    224: ("pneumoniamnist_224.npz", "d6a3c71de1b945ea11211b03746c1fe1"),
}
CLASS_NAMES = ("NORMAL", "PNEUMONIA")  # label 0, 1; the names of the Kermany folders it comes from
DATASETS = ("pneumoniamnist",)


class DownloadError(OSError):
    """A download that failed or a file that is not what it should be."""

    user_error = True  # the CLI prints it on one line and exits 2


def url_for(size: int) -> str:
    return f"{RECORD}/{PNEUMONIAMNIST[_check_size(size)][0]}?download=1"


def _check_size(size: int) -> int:
    if size not in PNEUMONIAMNIST:
        raise DownloadError(f"PneumoniaMNIST comes in sizes {', '.join(map(str, PNEUMONIAMNIST))}, not {size}")
    return size


def md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(source: str, dest: str, *, expected_md5: str | None, timeout: float = 60.0) -> str:
    """Copy ``source`` (a URL, ``file://`` URL or local path) to ``dest``, checking its MD5."""
    from tqdm.auto import tqdm

    tmp = dest + ".part"
    try:
        if "://" in source:
            with urllib.request.urlopen(source, timeout=timeout) as resp, open(tmp, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(dest), leave=False, disable=None) as bar:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
        else:
            shutil.copyfile(source, tmp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _remove(tmp)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"could not download {source}: {reason}; check the network, or pass a local copy with --source") from None
    got = md5(tmp)
    if expected_md5 and got != expected_md5:
        _remove(tmp)
        raise DownloadError(f"{source} has MD5 {got}, expected {expected_md5}: a damaged or different file")
    os.replace(tmp, dest)
    return dest


def write_class_folders(npz_path: str, out: str, class_names=CLASS_NAMES) -> dict[str, dict[str, int]]:
    """Write a MedMNIST ``.npz`` as ``out/<split>/<class>/<index>.png``; returns counts."""
    from PIL import Image

    try:
        archive = np.load(npz_path)
    except (OSError, ValueError) as exc:
        raise DownloadError(f"{npz_path} is not a MedMNIST .npz archive: {exc}") from None
    counts = {}
    with archive:
        for split in ("train", "val", "test"):
            if f"{split}_images" not in archive.files:
                raise DownloadError(f"{npz_path} has no {split}_images; not a MedMNIST archive")
            images = archive[f"{split}_images"]
            labels = np.asarray(archive[f"{split}_labels"]).reshape(-1).astype(int)
            if len(images) != len(labels) or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(class_names):
                raise DownloadError(f"{npz_path}: {split} images and labels do not match the classes {', '.join(class_names)}")
            counts[split] = {}
            for k, name in enumerate(class_names):
                folder = os.path.join(out, split, name)
                os.makedirs(folder, exist_ok=True)
                idx = np.flatnonzero(labels == k)
                for i in idx:
                    Image.fromarray(np.asarray(images[i], dtype=np.uint8)).save(os.path.join(folder, f"{split}_{i:05d}.png"))
                counts[split][name] = int(len(idx))
    return counts


PUBLISHED = object()  # sentinel: check against the published MD5 of the chosen size


def download_pneumoniamnist(out: str, *, size: int = 28, source: str | None = None, checksum=PUBLISHED,
                            keep_archive: bool = False) -> dict:
    """Download PneumoniaMNIST at ``size`` (or copy it from ``source``) and write it under ``out``.

    ``source`` replaces the published URL: a mirror, or a local path.  The file
    is checked against the published MD5 of that size; ``checksum=None`` skips
    the check (for a re-packed or test archive).
    """
    name, published = PNEUMONIAMNIST[_check_size(size)]
    expected = published if checksum is PUBLISHED else checksum
    if os.path.isdir(os.path.join(out, "train")):
        raise DownloadError(f"{out}/train already exists; choose an empty --out folder")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".download-") as tmp:
        archive = fetch(source or url_for(size), os.path.join(tmp, name), expected_md5=expected)
        counts = write_class_folders(archive, out)
        if keep_archive:
            shutil.move(archive, os.path.join(out, name))
    return {"dataset": "pneumoniamnist", "size": size, "out": os.path.abspath(out), "counts": counts,
            "source": source or url_for(size), "md5": expected}


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
