"""A small registry mapping ``--space`` strings to search spaces (like timm's).

A space is any module with a ``build(trial, *, input_shape, num_classes)``
function that suggests every hyperparameter it uses through ``trial`` and
returns a compiled Keras model, plus the optional attributes that
:class:`spaces.interface.SpaceModule` lists (``fit_options(trial)``, ``IMAGE_SIZE``, ...),
each checked when the space is loaded.  The built-in spaces are modules
(``dense``, ``cnn``) and the rows of the transfer table (:mod:`spaces.backbones`);
a path to a ``.py`` file works too.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Callable


class SpaceError(ValueError):
    """A space that cannot be found, loaded or built as asked."""

    user_error = True  # the CLI prints it on one line and exits 2


@dataclass(frozen=True)
class Space:
    """What the harness knows about a search space (from the attributes of :class:`spaces.interface.SpaceModule`)."""

    name: str
    description: str
    build: Callable[..., Any]
    fit_options: Callable[[Any], dict]
    image_size: int = 64
    color_mode: str = "grayscale"
    source: str = ""
    suggest: Callable[[Any], dict] | None = None  # the module's suggest(trial), when it has one (for listing)
    # known-good starting points, enqueued as a new study's first trials: ({"name": str, "params": {...}}, ...)
    warm_starts: tuple = ()
    # parameters added after studies were made, with the value older trials implied (FixedTrial rebuilds)
    legacy_params: dict = field(default_factory=dict)
    weights_note: str = ""  # the module's WEIGHTS_NOTE: what `run` says once about its default weights
    # feature_split(model) -> an object with .frozen, .rest, .cut, or None: where training may run on cached features
    feature_split: Callable[[Any], Any] | None = None
    grid: dict | None = None  # the module's GRID: what `--sampler grid` tries, where it gives one

    def fixed_params(self, params: dict) -> dict:
        """A stored trial's params, completed with :attr:`legacy_params` it predates, for ``FixedTrial``."""
        return {**self.legacy_params, **params}


# name -> module of the spaces that are modules (imported lazily so `lungsearch --help` stays instant);
# the transfer spaces follow them, one per row of the table in spaces/backbones.py
_MODULES = {"dense": "spaces.dense", "cnn": "spaces.cnn"}
_TABLE = "spaces.backbones"
_LOADED: dict[str, Space] = {}


def _space(name: str, namespace: dict, source: str) -> Space:
    """The :class:`Space` of a module's (or a table row's) attributes, refused unless they fit :class:`~spaces.interface.SpaceModule`."""
    from spaces import interface

    wrong = interface.problem(namespace)
    if wrong:
        raise SpaceError(f"space {source}: {wrong}")
    m = interface.read(namespace)
    doc = (namespace.get("__doc__") or "").strip().split("\n")[0]
    return Space(
        name=m.NAME or name,
        description=doc if m.DESCRIPTION is None else m.DESCRIPTION,
        build=m.build,
        fit_options=m.fit_options or (lambda trial: {"batch_size": interface.DEFAULT_BATCH_SIZE}),
        image_size=m.IMAGE_SIZE,
        color_mode=m.COLOR_MODE,
        source=source,
        suggest=m.suggest,
        warm_starts=_warm_starts(m.WARM_STARTS, source),
        legacy_params=dict(m.LEGACY_PARAMS),
        weights_note=m.WEIGHTS_NOTE,
        feature_split=m.feature_split,
        grid=m.GRID,
    )


def _warm_starts(raw, source: str) -> tuple:
    out = []
    for i, point in enumerate(raw):
        if not isinstance(point, dict) or not isinstance(point.get("params"), dict):
            raise SpaceError(f"space {source}: WARM_STARTS[{i}] must be a dict with 'params' (a dict of parameter values) and a 'name'")
        out.append({"name": str(point.get("name") or f"warm-start-{i}"), "params": dict(point["params"])})
    return tuple(out)


def _builtin() -> list[str]:
    """The registered names, in `lungsearch spaces` order: the module spaces, then the transfer table's rows."""
    return [*_MODULES, *importlib.import_module(_TABLE).names()]


def list_spaces(pattern: str = "*") -> list[str]:
    """Names of the registered spaces matching a shell-style pattern."""
    return [n for n in _builtin() if fnmatch.fnmatch(n, pattern)]


def get_space(name_or_path: str) -> Space:
    """Resolve ``--space``: a registered name or a path to a ``.py`` file."""
    if name_or_path in _LOADED:
        return _LOADED[name_or_path]
    if name_or_path in _MODULES:
        space = _space(name_or_path, vars(importlib.import_module(_MODULES[name_or_path])), name_or_path)
    elif name_or_path in _builtin():
        space = _space(name_or_path, importlib.import_module(_TABLE).attributes(name_or_path), name_or_path)
    elif name_or_path.endswith(".py") or os.sep in name_or_path:
        space = _load_file(name_or_path)
    else:
        raise SpaceError(
            f"unknown space {name_or_path!r}; known spaces: {', '.join(list_spaces())} "
            "(or give a path to a .py file)"
        )
    _LOADED[name_or_path] = space
    return space


def _load_file(path: str) -> Space:
    if not os.path.isfile(path):
        raise SpaceError(f"space file {path} does not exist")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"lungsearch_user_space_{name}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user file may raise anything while importing
        raise SpaceError(f"space file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return _space(name, vars(module), os.path.abspath(path))


def check_build(space: Space, trial, **facts) -> None:
    """Build ``space`` once with a throw-away ``trial``; a user file that raises becomes a :class:`SpaceError`.

    Run before a study starts, so a broken space file is one line and exit 2,
    not a study of failed trials.  A pruned combination (``TrialPruned``) is fine.
    """
    import optuna

    try:
        model = space.build(trial, **facts)
    except optuna.TrialPruned:
        return
    except SpaceError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if isinstance(exc, TypeError) and "unexpected keyword argument" in first:
            first += f" (build must accept **_ for the facts it does not use: {', '.join(sorted(set(facts) - {'input_shape', 'num_classes'}))})"
        raise SpaceError(f"space {space.source or space.name} raised while building: {type(exc).__name__}: {first}") from exc
    check_model(space, model, facts.get("input_shape"), facts.get("num_classes"))


def check_model(space: Space, model, input_shape, num_classes) -> None:
    """Raise :class:`SpaceError` unless ``model`` is what a trial can fit: a compiled Keras model, one probability per class."""
    import keras

    where = f"space {space.source or space.name}: build() returned"
    if not isinstance(model, keras.Model):
        raise SpaceError(f"{where} {type(model).__name__ if model is not None else 'None'}, not a keras.Model; "
                         "end build() with `return model` after model.compile(...)")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
        raise SpaceError(f"{where} a model that is not compiled; call model.compile(optimizer=..., "
                         "loss='sparse_categorical_crossentropy') before returning it")
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if num_classes is not None and outputs != num_classes:
        raise SpaceError(f"{where} a model with {outputs} outputs for {num_classes} classes; end it with "
                         f"keras.layers.Dense(num_classes, activation='softmax')")
    if input_shape is not None and tuple(model.input_shape[1:]) != tuple(input_shape):
        raise SpaceError(f"{where} a model taking {tuple(model.input_shape[1:])}, not the input_shape {tuple(input_shape)} it was given")


def check_warm_start(space: Space, point: dict) -> None:
    """Raise :class:`SpaceError` unless ``point["params"]`` is exactly what ``space`` suggests there, each within range.

    A warm start with a missing, extra or out-of-range parameter would not be
    the trial it claims to be (Optuna samples a missing one, and warns only).
    """
    trial = _Checker(point["params"])
    try:
        if space.suggest is not None:
            space.suggest(trial)
        space.fit_options(trial)
    except KeyError as exc:
        raise SpaceError(f"space {space.source or space.name}: warm start {point['name']!r} lacks parameter {exc.args[0]!r}") from None
    problems = trial.problems + [f"{k} is never suggested there" for k in sorted(set(point["params"]) - set(trial.used))
                                 if space.suggest is not None]
    if problems:
        raise SpaceError(f"space {space.source or space.name}: warm start {point['name']!r}: {'; '.join(problems)}")


class _Checker:
    """A stand-in trial that answers from fixed params and notes each that is out of its range."""

    def __init__(self, params: dict):
        self.params, self.used, self.problems = params, set(), []

    def _get(self, name):
        self.used.add(name)
        return self.params[name]

    def suggest_int(self, name, low, high, step=1, log=False):
        value = self._get(name)
        if not (isinstance(value, int) and low <= value <= high):
            self.problems.append(f"{name}={value!r} is not an int in {low}..{high}")
        return value

    def suggest_float(self, name, low, high, *, step=None, log=False):
        value = self._get(name)
        if not (isinstance(value, (int, float)) and low <= value <= high):
            self.problems.append(f"{name}={value!r} is not in {low:g}..{high:g}")
        return value

    def suggest_categorical(self, name, choices):
        value = self._get(name)
        if value not in list(choices):
            self.problems.append(f"{name}={value!r} is not one of {list(choices)}")
        return value

    def set_user_attr(self, key, value):
        pass


class _Recorder:
    """A stand-in trial that records every suggestion and answers deterministically.

    Integers and floats answer their upper bound, so every conditional
    per-block parameter shows; categoricals answer choice ``k``, so passes
    k = 0, 1, ... visit every branch.
    """

    def __init__(self, k: int, seen: dict):
        self.k, self.seen, self.params = k, seen, {}

    def _keep(self, name, text, value):
        self.seen.setdefault(name, text)
        self.params[name] = value
        return value

    def suggest_int(self, name, low, high, step=1, log=False):
        return self._keep(name, f"int {low}..{high}" + (" (log)" if log else "") + (f" step {step}" if step != 1 else ""), high)

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return self._keep(name, f"float {low:g}..{high:g}" + (" (log)" if log else "") + (f" step {step:g}" if step else ""), high)

    def suggest_categorical(self, name, choices):
        return self._keep(name, "one of " + ", ".join(str(c) for c in choices), choices[self.k % len(choices)])

    def set_user_attr(self, key, value):
        pass


def parameters(space: Space) -> dict[str, str] | None:
    """Parameter name -> its range, from the space's ``suggest`` and ``fit_options``; None if not listable."""
    if space.suggest is None:
        return None
    seen: dict[str, str] = {}
    for k in range(4):  # no space here offers more than 4 choices in one categorical
        space.suggest(_Recorder(k, seen))
        space.fit_options(_Recorder(k, seen))
    return seen
