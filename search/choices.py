"""Named samplers and pruners: the table behind ``--sampler`` and ``--pruner``."""

from __future__ import annotations

import warnings
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
    # CMA-ES on the numeric parameters; categorical ones fall back to random (needs the cmaes package)
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, n_startup_trials=5),
    # every combination of a space whose parameters are all discrete (Optuna's define-by-run grid);
    # a space module may instead give an explicit GRID = {param: [values]}, see make_sampler
    "grid": lambda seed: optuna.samplers.BruteForceSampler(seed=seed),
}

PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "median": _median,
    "sha": lambda seed: optuna.pruners.SuccessiveHalvingPruner(),
    "hyperband": lambda seed: optuna.pruners.HyperbandPruner(),
    "none": lambda seed: optuna.pruners.NopPruner(),
}


class ChoiceError(ValueError):
    """An unknown sampler or pruner name."""

    user_error = True  # the CLI prints it on one line and exits 2


def make_sampler(
    name: str, seed: int, fixed_params: dict | None = None, grid: dict | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``; ``grid`` ({param: [values]}) makes ``grid`` an explicit GridSampler."""
    if name not in SAMPLERS:
        raise ChoiceError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    # chosen on purpose, experimental or not: TPE's group=True, QMC, BruteForce, PartialFixed (--batch-size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "grid" and grid:
            sampler = optuna.samplers.GridSampler(grid, seed=seed)
        else:
            sampler = SAMPLERS[name](seed)
        if fixed_params:
            sampler = optuna.samplers.PartialFixedSampler(fixed_params, sampler)
    return sampler


def make_pruner(name: str, seed: int) -> optuna.pruners.BasePruner:
    if name not in PRUNERS:
        raise ChoiceError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
    return PRUNERS[name](seed)
