"""The interface of a search space: every attribute the registry reads from one, its type, default and meaning.

A space is a Python module (a file of ``spaces/``, or a user's
``--space path/to/file.py``) or a row of the transfer table
(:mod:`spaces.backbones`), which the registry expands into the same attributes.
:class:`SpaceModule` lists them all: ``build`` is required, every other one is
optional, with the default shown.  The registry checks each space against it
when it loads one (:func:`problem`): a wrong type, or a public name one typo
away from one of these (``IMAGE_SZIE``, ``fit_option``), is refused in one line
naming the module and the attribute, instead of falling back to a default in silence.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import ModuleType, UnionType
from typing import Any

DEFAULT_BATCH_SIZE = 32  # what fit_options gives where a space has none


@dataclass(frozen=True)
class SpaceModule:
    """What a space may define; the registry turns it into a :class:`~spaces.registry.Space`."""

    # build(trial, *, input_shape, num_classes, **facts) -> a compiled keras.Model with one softmax output per class.
    # It suggests every hyperparameter it uses through `trial`, and takes **_ for the facts it does not use
    # (weights, hflip, cache_dir: lungsearch.trial.build_facts).
    build: Callable[..., Any]
    # fit_options(trial) -> {"batch_size": int, ...}, plus "second_phase" where the trial fine-tunes;
    # None: {"batch_size": DEFAULT_BATCH_SIZE}
    fit_options: Callable[[Any], dict] | None = None
    # suggest(trial) -> every choice of the space, suggested through `trial` (build calls it too);
    # None: `lungsearch spaces` cannot list the parameters, and warm starts are not checked against them
    suggest: Callable[[Any], dict] | None = None
    NAME: str | None = None  # the space's name; None: its registered name, or the file's name
    DESCRIPTION: str | None = None  # one line for `lungsearch spaces`; None: the first line of the module's docstring
    IMAGE_SIZE: int = 64  # input side in pixels where --image-size is not given
    COLOR_MODE: str = "grayscale"  # grayscale or rgb, where --color is not given
    # known-good points, a new study's first trials: [{"name": str, "params": {parameter: value}}, ...]
    WARM_STARTS: list | tuple = ()
    # parameters added after studies were made -> the value older trials implied (so FixedTrial rebuilds those trials)
    LEGACY_PARAMS: dict = field(default_factory=dict)
    WEIGHTS_NOTE: str = ""  # said once at the start of `run` about the default weights (where they need the network)
    # feature_split(model) -> an object with .frozen, .rest, .cut, or None: where training may run on cached features
    feature_split: Callable[[Any], Any] | None = None
    GRID: dict | None = None  # {parameter: [values]}: what `--sampler grid` tries; None: every combination of the space


ATTRIBUTES = tuple(f.name for f in fields(SpaceModule))


def read(namespace: dict) -> SpaceModule:
    """The interface's attributes found in ``namespace`` (a module's ``vars``), the rest defaulted; call :func:`problem` first."""
    return SpaceModule(**{name: namespace[name] for name in ATTRIBUTES if name in namespace})


def problem(namespace: dict) -> str | None:
    """What is wrong with a space's ``namespace`` against :class:`SpaceModule`, in words naming the attribute; None if nothing."""
    if not callable(namespace.get("build")):
        return "defines no build(trial, *, input_shape, num_classes) function"
    hints = typing.get_type_hints(SpaceModule)
    for name in ATTRIBUTES:
        if name in namespace and not _fits(namespace[name], hints[name]):
            return f"{name} must be {_kind(hints[name])}, not {type(namespace[name]).__name__} ({namespace[name]!r:.60})"
    for name, value in namespace.items():
        meant = _meant(name)
        if meant and not isinstance(value, ModuleType):
            return (f"{name} is not an attribute a space defines; did you mean {meant}? "
                    "(a name of the module's own: start it with _)")
    return None


def _options(hint) -> tuple:
    """The types a (possibly union) annotation allows."""
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) else (hint,)


def _fits(value, hint) -> bool:
    """Is ``value`` of the annotated type (None, a callable, or an instance; an int is never a bool)?"""
    for option in _options(hint):
        if option is type(None):
            if value is None:
                return True
        elif typing.get_origin(option) is Callable:
            if callable(value):
                return True
        elif isinstance(value, option) and not (option is int and isinstance(value, bool)):
            return True
    return False


def _kind(hint) -> str:
    """A type annotation in words: ``Callable[..., Any] | None`` -> ``a function or None``."""
    return " or ".join("None" if o is type(None) else "a function" if typing.get_origin(o) is Callable
                       else f"{'an' if o.__name__[0] in 'aeiou' else 'a'} {o.__name__}" for o in _options(hint))


def _meant(name: str) -> str | None:
    """The attribute a public name not among :data:`ATTRIBUTES` looks like a misspelling of (case, a letter or two), else None."""
    if name.startswith("_") or name in ATTRIBUTES:
        return None
    by_lower = {a.lower(): a for a in ATTRIBUTES}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.85)
    return by_lower[close[0]] if close else None
