"""Warm starts in the study: enqueued once, and worker k waits until workers 1..k-1 took theirs."""

from __future__ import annotations

import types

import optuna

import search
from search import warm_start


def test_worker_k_waits_until_the_earlier_workers_took_their_warm_starts(monkeypatch):
    clock = [0.0]  # a fake clock: each poll's sleep moves it on, so the test counts polls instead of timing them
    sleeps = []
    monkeypatch.setattr(warm_start, "time", types.SimpleNamespace(
        monotonic=lambda: clock[0], sleep=lambda s: sleeps.append(s) or clock.__setitem__(0, clock[0] + s)))
    study = optuna.create_study(direction="maximize")
    points = [{"name": "a", "params": {"x": 1}}, {"name": "b", "params": {"x": 2}}]
    assert search.enqueue_warm_starts(study, points) == ["a", "b"]
    search.wait_for_earlier_workers(study, 2, timeout=0.3, poll=0.05)  # worker 1 has not taken "a" yet
    assert clock[0] >= 0.3 and len(sleeps) >= 6  # waited out its timeout, polling
    study.ask()  # worker 1 takes "a"
    sleeps.clear()
    search.wait_for_earlier_workers(study, 2, timeout=5, poll=0.05)  # "b" is worker 2's to take now
    search.wait_for_earlier_workers(study, 1, timeout=5, poll=0.05)  # worker 1 never waits
    assert sleeps == []
    assert search.enqueue_warm_starts(study, points) == []  # a study with trials gets none again
