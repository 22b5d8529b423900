import numpy as np

from search.pareto import pareto_mask


def test_front_keeps_only_non_dominated_points() -> None:
    acc = np.array([0.90, 0.80, 0.95, 0.85, 0.90])
    sec = np.array([10.0, 5.0, 30.0, 20.0, 12.0])
    # 3 (0.85 in 20 s) is beaten by 0 (0.90 in 10 s); 4 (0.90 in 12 s) too.
    assert pareto_mask(acc, sec).tolist() == [True, True, True, False, False]


def test_ties_are_both_kept() -> None:
    assert pareto_mask(np.array([0.9, 0.9]), np.array([1.0, 1.0])).tolist() == [True, True]
