"""Named samplers and pruners: the table behind ``--sampler`` and ``--pruner``."""

from __future__ import annotations

from typing import Callable

import optuna


def _median(seed: int):
    # Judge a trial against the median of earlier ones at the same epoch, once
    # 5 trials have finished and after its own first 2 epochs (warm-up).
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
}

PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "median": _median,
    "sha": lambda seed: optuna.pruners.SuccessiveHalvingPruner(),
    "hyperband": lambda seed: optuna.pruners.HyperbandPruner(),
    "none": lambda seed: optuna.pruners.NopPruner(),
}


def make_sampler(name: str, seed: int, fixed_params: dict | None = None) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    sampler = SAMPLERS[name](seed)
    if fixed_params:
        sampler = optuna.samplers.PartialFixedSampler(fixed_params, sampler)
    return sampler


def make_pruner(name: str, seed: int) -> optuna.pruners.BasePruner:
    if name not in PRUNERS:
        raise ValueError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
    return PRUNERS[name](seed)
