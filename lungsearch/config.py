"""Run configuration: defaults here, then an optional TOML file, then flags.

Later wins; unknown keys are errors.  The resolved config is stored with the
study, so a study says how it was made.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields


class ConfigError(ValueError):
    """A config file or flag that cannot be used."""

    user_error = True  # the CLI prints it on one line and exits 2


@dataclass(frozen=True)
class RunConfig:
    data: str = "demo"  # folder with train/<class>/ (and test/<class>/), or "demo"
    space: str = "cnn"  # a registered space name or a path to a .py space file
    study: str | None = None  # study name; default: <space>-<data folder name>
    storage: str = "sqlite:///studies.db"  # any Optuna storage URL
    artifacts: str | None = None  # folder for kept models; default: beside the SQLite file
    trials: int = 20  # total trials the study should reach (finished: complete or pruned)
    epochs: int = 10  # epoch cap per trial; pruning may stop a trial sooner
    image_size: int | None = None  # input side in pixels; default: the space's own
    color: str | None = None  # grayscale or rgb; default: the space's own
    batch_size: int | None = None  # pin the batch size; default: tuned by the space
    metric: str = "val_auc"  # objective, maximised: val_auc or val_accuracy
    sampler: str = "tpe"  # tpe, random, cmaes, qmc or grid
    pruner: str = "median"  # median, sha, hyperband or none
    val_fraction: float = 0.15  # share of train (by patient) held out for validation
    seed: int = 0  # seeds the split, the sampler and each trial's weights
    timeout: float | None = None  # stop starting trials after this many seconds
    class_weights: bool = True  # weight classes by inverse frequency when imbalanced
    cache_dir: str | None = None  # decoded-image cache; default: the user's cache dir + /lungsearch
    dedupe: bool = False  # drop byte-identical copies (of test files, and repeats) from train/validation
    group_pattern: str | None = None  # regex for the patient id in file names; default: Kermany names
    hflip: bool = False  # random horizontal flips while training (off: an X-ray has a fixed orientation)
    weights: str | None = None  # transfer backbones: a local weights file, "random", or None for imagenet ($LUNGSEARCH_WEIGHTS)
    workers: int = 1  # worker processes on this machine, all on one study (one GPU each where there are several)
    heartbeat: int = 30  # seconds between a running trial's heartbeats (RDB storage); silent 2x this = dead, retried
    recycle: int = 10  # replace the worker process by a fresh one after this many trials (Keras grows); 0 = never
    # keep the models of this many best trials (and the accuracy/time front): `best --ensemble K` needs K;
    # default: as many as `best` averages by default (search.keep.DEFAULT_ENSEMBLE; not imported: config imports no Optuna)
    keep_top: int | None = None
    warm_start: bool = True  # a new study's first trials are the space's known-good points (WARM_STARTS)
    feature_cache: bool = True  # a frozen backbone runs once per image; its cached output trains the rest (transfer spaces)

    def with_updates(self, **changes) -> "RunConfig":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, stored: dict) -> "RunConfig":
        """A config stored with a study (:meth:`to_dict`): keys an older lungsearch had and this one lacks are dropped."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})

    @property
    def study_name(self) -> str:
        if self.study:
            return self.study
        base = os.path.basename(os.path.normpath(self.data)) or "data"
        return f"{os.path.splitext(os.path.basename(self.space))[0]}-{base}"


def load_toml(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return {k.replace("-", "_"): v for k, v in raw.items()}


# The names some settings take (the search's own tables, kept here so `--help` and checking a config import no Optuna;
# tests/search/test_choices.py holds them equal).
CHOICES = {
    "metric": ("val_auc", "val_accuracy"),  # = search.METRICS
    "sampler": ("tpe", "random", "cmaes", "qmc", "grid"),  # = search.SAMPLERS
    "pruner": ("median", "sha", "hyperband", "none"),  # = search.PRUNERS
    "color": ("grayscale", "rgb"),
}


def check_types(config: RunConfig, origin: str = "setting") -> None:
    """Every setting of the type and among the names it takes: one line naming the key, before anything is stored."""
    import re
    import typing

    hints = typing.get_type_hints(RunConfig)
    for f in fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        allowed = typing.get_args(hint) or (hint,)
        if value is None and type(None) in allowed:
            continue
        want = next(t for t in allowed if t is not type(None))
        ok = isinstance(value, bool) if want is bool else (
            isinstance(value, want) and not isinstance(value, bool) if want is int else
            isinstance(value, (int, float)) and not isinstance(value, bool) if want is float else isinstance(value, want))
        if not ok:
            kind = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}[want]
            raise ConfigError(f"{origin} {f.name} = {value!r} is not {kind}; give {f.name} {kind}"
                              + (f" (default {getattr(RunConfig(), f.name)!r})" if getattr(RunConfig(), f.name) is not None else ""))
        if f.name in CHOICES and value not in CHOICES[f.name]:
            raise ConfigError(f"{origin} {f.name} = {value!r} is not one of {', '.join(CHOICES[f.name])}")
    if config.group_pattern is not None:
        try:
            compiled = re.compile(config.group_pattern)
        except re.error as exc:
            raise ConfigError(f"--group-pattern {config.group_pattern!r} is not a regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ConfigError(f"--group-pattern {config.group_pattern!r} has no group: put the patient id in parentheses, "
                              r"e.g. '(person\d+)_'")


def resolve(file: str | None = None, **flags) -> RunConfig:
    """Defaults < TOML file < flags (flags left as None do not override); every value checked before it is used."""
    config = RunConfig()
    if file:
        config = config.with_updates(**load_toml(file))
        check_types(config, f"config file {file}:")
    config = config.with_updates(**flags)
    check_types(config)
    if config.trials < 1 or config.epochs < 1:
        raise ConfigError("--trials and --epochs must be at least 1")
    if config.timeout is not None and config.timeout <= 0:
        raise ConfigError(f"--timeout must be more than 0 seconds (got {config.timeout:g}); leave it out to run until --trials")
    if not 0 < config.val_fraction < 0.5:  # split_validation's own bounds, checked here before a study is stored
        raise ConfigError(f"--val-fraction must be between 0 and 0.5 (got {config.val_fraction:g}); the default is 0.15")
    if config.keep_top is not None and config.keep_top < 1:
        raise ConfigError(f"--keep-top must be at least 1 (got {config.keep_top}): the best trial's model is always kept")
    if config.workers < 1 or config.heartbeat < 1 or config.recycle < 0:
        raise ConfigError("--workers and --heartbeat must be at least 1, and --recycle at least 0")
    if config.image_size is not None:
        check_image_size(config.image_size)  # the memory a folder needs is checked where it is decoded
    if config.batch_size is not None and config.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1 (got {config.batch_size}); leave it out to let the space tune it")
    return config


def check_image_size(image_size: int) -> None:
    """The fixed bounds of ``--image-size`` (:mod:`lungsearch.data.limits` says why): the one place they are checked."""
    from lungsearch.data import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"--image-size must be at least {MIN_IMAGE_SIZE} pixels, got {image_size}")
    if image_size > MAX_IMAGE_SIZE:
        raise ConfigError(f"--image-size {image_size} is above the {MAX_IMAGE_SIZE} px limit: the spaces are made for 64-224 px, and "
                          f"at {MAX_IMAGE_SIZE} px one batch through a first convolution already takes gigabytes; "
                          f"use {MAX_IMAGE_SIZE} or less")


def as_flags(config: RunConfig) -> list[str]:
    """The `lungsearch run` flags that rebuild ``config`` (only values that differ from the defaults)."""
    defaults = RunConfig()
    flags = []
    for f in fields(config):
        value = getattr(config, f.name)
        if value == getattr(defaults, f.name) or value is None:
            continue
        if f.name in ("class_weights", "warm_start", "feature_cache"):  # on by default: the flag switches it off
            flags.append(f"--no-{f.name.replace('_', '-')}")
        elif isinstance(value, bool):  # store_true flags (--dedupe, --hflip) take no value
            flags.append(f"--{f.name.replace('_', '-')}")
        else:
            flags += [f"--{f.name.replace('_', '-')}", str(value)]
    return flags


def write_toml(config: RunConfig, path: str) -> None:
    """Write ``config`` as a TOML file that :func:`resolve` reads back to the same config (None keys left out)."""
    import json

    with open(path, "w") as fh:
        for key, value in config.to_dict().items():
            if value is None:
                continue
            text = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
            fh.write(f"{key} = {text}\n")


# Keys that decide what a study measures: resuming with different ones would mix incomparable trials.
IDENTITY_KEYS = ("data", "space", "image_size", "color", "metric", "val_fraction", "seed", "dedupe", "group_pattern", "hflip")
