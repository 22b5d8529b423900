"""A frozen backbone runs once per image: its output is cached, and a trial trains only the rest on it.

With pretrained weights the frozen part of a transfer model (everything
before its trainable blocks, batch norm in inference mode) is a fixed
function, yet every epoch of every trial used to push every image through it
again.  :class:`FeatureCache` asks the space where its model's frozen part
ends (the space's ``feature_split``), computes that part's output for the
train and validation images once, and keeps it in the cache folder beside the
decoded images (memory-mapped, locked so that two workers compute it once,
replaced when its inputs change, like them).  The key is a digest of what the
features depend on: the frozen part's weights and layers, and the images
themselves (so the image size, color mode, data and split are in it).

The trained layers are the model's own, so the model a trial keeps and
``best`` exports is the whole network, pixels in, as without the cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lungsearch import cache
from lungsearch.data import Arrays

BATCH = 64  # images per forward pass of the frozen part


@dataclass
class Prepared:
    """A model's trainable rest and the features it trains on, and what it cost."""

    rest: object  # keras.Model: features -> probabilities, sharing the model's layers
    train: Arrays
    val: Arrays
    record: dict  # stored with the trial: cut, feature shape, first-pass seconds, whether read from the cache


@dataclass
class FeatureCache:
    """Where training a model may run on cached features: the space's ``feature_split`` and the cache folder."""

    split: Callable
    cache_dir: str | None = None
    label: str = ""  # names the data in the cache's group (a folder whose images change replaces its entries)
    # a refit's folds: every image's features computed once (pool: all images) and each fold's rows taken from them,
    # rather than the features of each fold's own subset, which would cost a full pass per fold
    pool: np.ndarray | None = None
    rows: dict | None = None  # {"train": indices into pool, "val": indices into pool}, the fold's images

    def prepare(self, model, train: Arrays, val: Arrays) -> Prepared | None:
        """The rest of ``model`` compiled as the model is, and its features; None where the model has no fixed frozen part."""
        cut = self.split(model)
        if cut is None:
            return None
        start = time.perf_counter()
        hits = []
        out = {}
        if self.pool is not None:
            features, hit = features_of(cut.frozen, self.pool, cache_dir=self.cache_dir, group=f"features|{self.label}|pool|{cut.cut}")
            for name, arrays in (("train", train), ("val", val)):
                rows = np.asarray(self.rows[name])
                if len(rows) != len(arrays) or (len(rows) and not np.array_equal(self.pool[rows[0]], arrays.x[0])):
                    raise ValueError(f"the feature pool's {name} rows are not the fold's {name} images")
                out[name] = Arrays(features[rows], arrays.y)
            hits.append(hit)
        else:
            for name, arrays in (("train", train), ("val", val)):
                features, hit = features_of(cut.frozen, arrays.x, cache_dir=self.cache_dir, group=f"features|{self.label}|{name}|{cut.cut}")
                out[name] = Arrays(features, arrays.y)
                hits.append(hit)
        rest = cut.rest
        optimizer = model.optimizer
        rest.compile(optimizer=type(optimizer).from_config(optimizer.get_config()), loss=model.loss, metrics=["accuracy"])
        record = {"cut": cut.cut, "shape": list(out["train"].x.shape[1:]), "first_pass_seconds": round(time.perf_counter() - start, 3),
                  "from_cache": all(hits)}
        return Prepared(rest, out["train"], out["val"], record)


def key(frozen, x: np.ndarray) -> str:
    """Digest of everything the features depend on: the frozen part's layers and weights, and the images."""
    digest = hashlib.sha256(b"lungsearch-features-1\n")
    digest.update(json.dumps(frozen.get_config(), sort_keys=True, default=str).encode())
    for weight in frozen.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    digest.update(repr((x.shape, str(x.dtype))).encode())
    digest.update(np.ascontiguousarray(x).data)
    return digest.hexdigest()[:24]


def features_of(frozen, x: np.ndarray, *, cache_dir: str | None = None, group: str | None = None) -> tuple[np.ndarray, bool]:
    """The frozen part's output for ``x`` (computed once, then memory-mapped from the cache) and whether it was a hit."""

    def build():
        return {"x": np.asarray(frozen.predict(x, batch_size=BATCH, verbose=0), dtype=np.float32)}, {"shape": list(x.shape)}

    entry = cache.cached(f"features-{key(frozen, x)}", build, cache_dir, group=group)
    return entry.arrays["x"], entry.hit
