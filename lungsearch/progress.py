"""What `lungsearch run` prints while a study runs.

- a line when a trial starts: its key parameters, its size, the run's elapsed time and the study's ETA;
- a line per epoch: epoch k/N, the objective, the training loss, seconds so far; on a terminal
  (one process) a bar over the current epoch's batches sits under those lines;
- a line when a trial finishes: state, value, time, epochs, best so far, elapsed and ETA.

Every line is one ``write`` followed by a flush, so the lines of several worker
processes sharing one terminal or log never cut into each other; with several
workers each line starts with its worker (``w1/2``) and no bar is drawn (bars of
several processes would overwrite each other).  ``--quiet`` keeps only the
finished-trial lines.
"""

from __future__ import annotations

import datetime
import re
import sys
import time

import optuna
from optuna.trial import TrialState

from search.loop import trial_reason

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
RECENT = 10  # the ETA uses the mean duration of the latest finished trials
KEY_PARAMS = 8  # parameters shown on a trial's start line (the rest are in the study and `report`)
# shown first where a space has them; then the space's others, in its own order
PREFERRED = ("conv_blocks", "filters", "units", "dense_layers", "head", "dense_units", "head_units", "dropout",
             "optimizer", "learning_rate", "batch_size", "augment", "fine_tune", "trainable_blocks")
PER_LAYER = re.compile(r"^(.*)_[bl](\d+)$")  # filters_b0, units_l1: one entry per block or layer


def clock(seconds: float) -> str:
    """``45s``, ``3m05s``, ``1h02m``."""
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _short(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.3g}" if v else "0"
    return str(v)


def key_params(params: dict, limit: int = KEY_PARAMS) -> str:
    """``conv_blocks=3 filters=32/64/128 optimizer=rmsprop learning_rate=0.001 ... (+5 more)``.

    Per-block parameters (``filters_b0``, ``filters_b1``...) are one entry, their values joined by ``/``.
    """
    grouped: dict[str, list] = {}
    for name, value in params.items():
        m = PER_LAYER.match(name)
        key = name
        if m:  # filters_b0 -> filters; dropout_b0 -> dropout_b where the space also has a plain dropout
            key = m.group(1) if m.group(1) not in params else name[: m.start(2)]
        grouped.setdefault(key, []).append((int(m.group(2)) if m else 0, value))
    entries = {k: "/".join(_short(v) for _, v in sorted(vs, key=lambda p: p[0])) for k, vs in grouped.items()}
    order = [k for k in PREFERRED if k in entries] + [k for k in entries if k not in PREFERRED]
    shown = " ".join(f"{k}={entries[k]}" for k in order[:limit])
    return shown + (f" (+{len(order) - limit} more)" if len(order) > limit else "")


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """Start, epoch and finished lines of a study's trials; the objective and the trial loop call it.

    ``worker`` (``"1/2"``) prefixes every line; ``bar`` (default: on a terminal,
    one process, not quiet) draws a tqdm bar over each epoch's batches.
    ``workers`` divides the ETA; ``started`` is when the run began (``time.time()``),
    for a worker process: the supervisor's start, so a recycled worker does not restart the clock.
    """

    def __init__(self, metric: str, total: int, epochs: int | None = None, *, stream=None, worker: str | None = None,
                 workers: int = 1, quiet: bool = False, bar: bool | None = None, started: float | None = None,
                 deadline: float | None = None):
        self.metric, self.total, self.epochs = metric, total, epochs
        self.stream = stream or sys.stdout
        self.worker, self.workers, self.quiet = worker, max(1, workers), quiet
        self.bar = (not quiet and worker is None and _isatty(self.stream)) if bar is None else bar
        self.started = time.time() if started is None else started
        self.deadline = deadline
        self._trial: int | None = None
        self._epoch = 0
        self._tqdm = None

    # ------------------------------------------------------------------ output

    def say(self, line: str) -> None:
        """One whole line: one write, then a flush."""
        self._close_bar()
        prefix = f"w{self.worker} " if self.worker else ""
        self.stream.write(prefix + line + "\n")
        self.stream.flush()

    def timing(self, study: optuna.Study) -> str:
        """``elapsed 2m05s, ETA 4m10s``: this run's time, and the remaining trials at the recent pace."""
        now = time.time()
        text = f"elapsed {clock(now - self.started)}"
        eta = self.eta(study)
        if eta == 0.0:
            return text
        if eta is None:
            return text + ", ETA after the first trial"
        if self.deadline is not None and now + eta > self.deadline:
            return text + f", ETA {clock(max(0.0, self.deadline - now))} (--timeout; {clock(eta)} for all trials)"
        return text + f", ETA {clock(eta)}"

    def eta(self, study: optuna.Study) -> float | None:
        """Seconds until the study has its total: remaining trials x recent mean duration / workers."""
        trials = study.get_trials(deepcopy=False, states=FINISHED)
        left = self.total - len(trials)
        if left <= 0:
            return 0.0  # done: nothing left to estimate
        spans = _recent(trials)
        if not spans:
            return None
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.datetime_start]
        mean = sum(spans) / len(spans)
        now = datetime.datetime.now()
        # the running trials are partly done already: count what is left of each (at least nothing)
        in_flight = sum(max(0.0, mean - (now - t.datetime_start).total_seconds()) for t in running[:left])
        waiting = max(0, left - len(running))
        # at least a second while a trial is left: 0.0 means done, and a trial running past the mean is not done
        return max(1.0, (in_flight + waiting * mean) / self.workers)

    # ------------------------------------------------------------------ called by the objective

    def trial_started(self, trial: optuna.Trial, *, param_count: int | None = None) -> None:
        self._trial, self._epoch = trial.number, 0
        if self.quiet:
            return
        size = f" ({param_count:,} params)" if param_count else ""
        warm = trial.user_attrs.get("warm_start")
        what = f"warm start {warm}: " if warm else ""
        weights = trial.user_attrs.get("backbone_weights")  # transfer spaces: what the backbone started from
        size += f"; backbone weights: {weights}" if weights else ""
        self.say(f"trial {trial.number} started: {what}{key_params(trial.params)}{size}; {self.timing(trial.study)}")

    def batch(self, epoch: int, step: int, steps: int | None) -> None:
        """Before each training batch (only when the bar is on): move the bar."""
        if not self.bar or not steps:
            return
        if self._tqdm is None or epoch != self._epoch:
            from tqdm.auto import tqdm

            self._close_bar()
            self._epoch = epoch
            cap = f"/{self.epochs}" if self.epochs else ""
            self._tqdm = tqdm(total=steps, desc=f"  trial {self._trial} epoch {epoch + 1}{cap}", unit="batch",
                              leave=False, file=self.stream, dynamic_ncols=True, mininterval=0.2)
        self._tqdm.n = step
        self._tqdm.refresh() if step == 0 else self._tqdm.update(0)

    def epoch_ended(self, trial: optuna.Trial, epoch: int, logs: dict, seconds: float) -> None:
        self._epoch = epoch + 1
        if self.quiet:
            return
        cap = f"/{self.epochs}" if self.epochs else ""
        parts = [f"  trial {trial.number} epoch {epoch + 1}{cap}"]
        value = logs.get(self.metric)
        if value is not None:
            parts.append(f"{self.metric}={float(value):.4f}")
        if logs.get("loss") is not None:
            parts.append(f"loss={float(logs['loss']):.4f}")
        parts.append(f"{seconds:.1f}s")
        self.say("  ".join(parts))

    def _close_bar(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    # ------------------------------------------------------------------ study callback: a trial finished

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        parts = [f"[{finished}/{self.total}] trial {trial.number:>3}", f"{trial.state.name:<8}"]
        if attrs.get("warm_start"):
            parts.insert(1, f"(warm start {attrs['warm_start']})")
        if trial.state == TrialState.COMPLETE:
            parts.append(f"{self.metric}={trial.value:.4f}")
        elif "history" in attrs and attrs["history"].get(self.metric):
            parts.append(f"{self.metric}={attrs['history'][self.metric][-1]:.4f}")
        if "train_seconds" in attrs:
            parts.append(f"{attrs['train_seconds']:.1f}s")
        if "epochs" in attrs:
            parts.append(f"{attrs['epochs']} ep")
        features = attrs.get("feature_cache")
        if features:  # which path it took: the first phase on the frozen backbone's cached output
            how = "read from cache" if features.get("from_cache") else "computed"
            parts.append(f"features after {features['cut']} {how} in {features['first_pass_seconds']:.1f}s")
        if trial.state in (TrialState.FAIL, TrialState.PRUNED):
            parts.append(f"({trial_reason(trial)})")
        try:
            best = study.best_trial
            parts.append(f"best #{best.number} {best.value:.4f}")
        except ValueError:
            pass
        parts.append(f"| {self.timing(study)}")
        self.say("  ".join(parts))


def _recent(trials) -> list[float]:
    """Durations in seconds of the latest finished trials (by completion)."""
    done = sorted((t for t in trials if t.datetime_start and t.datetime_complete), key=lambda t: t.datetime_complete)
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in done[-RECENT:]]
