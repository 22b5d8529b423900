"""The Optuna side: storage, sampler, pruner, objective, trial loop."""

from search.choices import PRUNERS, SAMPLERS, make_pruner, make_sampler
from search.keep import ModelKeeper
from search.loop import StudyAborted, count_finished, run_trials
from search.objective import METRICS, Objective, Trained, trial_seed
from search import workers
from search.storage import StorageError, default_artifact_dir, load_study, open_storage, study_names
from search.warm_start import enqueue_warm_starts, requeue_interrupted, started_trials, wait_for_earlier_workers

__all__ = [
    "METRICS", "PRUNERS", "SAMPLERS", "ModelKeeper", "Objective", "StorageError", "StudyAborted", "Trained",
    "count_finished", "default_artifact_dir", "enqueue_warm_starts", "load_study", "make_pruner", "make_sampler",
    "open_storage", "requeue_interrupted", "run_trials", "started_trials", "study_names", "trial_seed", "wait_for_earlier_workers", "workers",
]
