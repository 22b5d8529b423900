"""The decision threshold: chosen on validation by each rule, and the decision it makes, whichever index the disease class has."""

import numpy as np
import pytest

from lungsearch import evaluate


def test_youden_threshold_is_the_hand_picked_one():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.3, 0.6, 0.5, 0.7, 0.9])
    d = evaluate.choose_threshold(y, s)
    # J at 0.7: 2/3 - 0 = 0.667; at 0.5: 1 - 1/3 = 0.667; at 0.9: 1/3. First maximum (higher threshold) wins.
    assert d["threshold"] == pytest.approx(0.7)
    assert d["val_sensitivity"] == pytest.approx(2 / 3) and d["val_specificity"] == pytest.approx(1.0)


def test_min_sensitivity_floor_is_honoured_on_validation():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = np.clip(0.25 * y + rng.normal(0.4, 0.2, 400), 0, 1)
    for floor in (0.8, 0.9, 0.95, 0.99):
        d = evaluate.choose_threshold(y, s, min_sensitivity=floor)
        pred = s >= d["threshold"]
        sens = pred[y == 1].mean()
        assert sens >= floor
        assert d["val_sensitivity"] == pytest.approx(sens)
        # No higher threshold keeps the floor with more specificity.
        spec = (~pred[y == 0]).mean()
        for t in np.unique(s):
            if (s[y == 1] >= t).mean() >= floor:
                assert (s[y == 0] < t).mean() <= spec + 1e-12
    youden = evaluate.choose_threshold(y, s)
    assert youden["val_sensitivity"] < 0.99  # the floor genuinely moved the threshold


def test_bad_floor_and_one_class_validation():
    with pytest.raises(evaluate.EvaluationError):
        evaluate.choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), min_sensitivity=1.5)
    d = evaluate.choose_threshold(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.8]))
    assert d["threshold"] == 0.5


def test_decide_applies_threshold_to_positive_class():
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]])
    assert evaluate.decide(probs, 0.65, 1).tolist() == [0, 0, 1]
    assert evaluate.decide(probs, 0.65, 0).tolist() == [0, 1, 1]
    assert evaluate.decide(probs, None, None).tolist() == [0, 1, 1]


# --------------------------------------------------------------------------- threshold rules (opt-in; youden stays the default)
# y = [0 0 0 1 1 1], s = [.1 .3 .6 .5 .7 .9]: J is 1/3 at 0.9, 2/3 at 0.7, 1/3 at 0.6, 2/3 at 0.5, 1/3 at 0.3, 0 at 0.1.
Y6, S6 = np.array([0, 0, 0, 1, 1, 1]), np.array([0.1, 0.3, 0.6, 0.5, 0.7, 0.9])


def test_default_rule_is_todays_youden():
    assert evaluate.choose_threshold(Y6, S6) == evaluate.choose_threshold(Y6, S6, rule="youden")
    assert evaluate.choose_threshold(Y6, S6)["threshold"] == pytest.approx(0.7)


def test_youden_mid_is_the_middle_of_the_first_interval_of_max_j():
    # max J first at 0.7; every t in (0.6, 0.7] decides as 0.7 does (0.5 ties too, but past a lower J): midpoint 0.65
    d = evaluate.choose_threshold(Y6, S6, rule="youden-mid")
    assert d["threshold"] == pytest.approx(0.65) and d["interval"] == pytest.approx([0.6, 0.7])
    assert d["val_sensitivity"] == pytest.approx(2 / 3) and d["val_specificity"] == 1.0


def test_youden_mid_lands_in_the_middle_of_a_gap_between_the_classes():
    # validation separates fully: normals up to 0.2, disease from 0.8; Youden takes the gap's top edge, the midpoint its middle
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.05, 0.1, 0.2, 0.8, 0.85, 0.95])
    assert evaluate.choose_threshold(y, s)["threshold"] == pytest.approx(0.8)
    assert evaluate.choose_threshold(y, s, rule="youden-mid")["threshold"] == pytest.approx(0.5)


def test_youden_mid_spans_a_run_of_tied_maxima():
    # 2 normal, 2 disease; a normal and a disease image share 0.5, so passing it moves sensitivity and 1 - specificity
    # by 1/2 each: J = 1/2 at 0.9 and at 0.5, 0 at 0.1.  Youden: 0.9; the interval of max J: (0.1, 0.9], midpoint 0.5
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.5, 0.5, 0.9])
    assert evaluate.choose_threshold(y, s)["threshold"] == pytest.approx(0.9)
    d = evaluate.choose_threshold(y, s, rule="youden-mid")
    assert d["interval"] == pytest.approx([0.1, 0.9]) and d["threshold"] == pytest.approx(0.5)


def test_half_is_point_five_whatever_validation_says():
    d = evaluate.choose_threshold(Y6, S6, rule="half")
    assert d["threshold"] == 0.5
    assert d["val_sensitivity"] == 1.0 and d["val_specificity"] == pytest.approx(2 / 3)  # 0.5, 0.7, 0.9 >= 0.5; 0.6 is not < 0.5


def test_temperature_matches_a_hand_fitted_temperature():
    # p = 0.9 four times (3 disease), p = 0.1 four times (1 disease): calibrated, 0.9 should read 0.75, and
    # sigmoid(logit(0.9) / T) = 0.75 <=> ln 9 / T = ln 3 <=> T = 2
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    s = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
    assert evaluate.fit_temperature(y, s) == pytest.approx(2.0, rel=1e-4)
    # training prevalence 0.6: calibrated p >= 0.6 <=> logit(p) >= 2 ln 1.5 <=> p >= 2.25 / 3.25 = 9 / 13
    d = evaluate.choose_threshold(y, s, rule="temperature", prevalence=0.6)
    assert d["temperature"] == pytest.approx(2.0, rel=1e-4) and d["prevalence"] == 0.6
    assert d["threshold"] == pytest.approx(9 / 13, rel=1e-4)
    # prevalence 0.5: the threshold is 0.5 whatever the temperature; default prevalence: validation's (here 0.5)
    assert evaluate.choose_threshold(y, s, rule="temperature")["threshold"] == pytest.approx(0.5)


def test_rules_refuse_what_they_cannot_do():
    with pytest.raises(evaluate.EvaluationError, match="unknown threshold rule"):
        evaluate.choose_threshold(Y6, S6, rule="f1")
    with pytest.raises(evaluate.EvaluationError, match="cannot be combined"):
        evaluate.choose_threshold(Y6, S6, 0.9, rule="half")
    with pytest.raises(evaluate.EvaluationError, match="prevalence"):
        evaluate.choose_threshold(Y6, S6, rule="temperature", prevalence=1.0)


@pytest.mark.parametrize("rule, expected", [("youden", 0.7), ("youden-mid", 0.65), ("half", 0.5), ("temperature", None)])
@pytest.mark.parametrize("names", [("NORMAL", "PNEUMONIA"), ("Covid", "Normal")])
def test_every_rule_gives_the_same_decision_whichever_index_the_disease_class_has(names, rule, expected):
    positive = evaluate.positive_class(names)
    y = np.where(Y6 == 1, positive, 1 - positive)  # disease at index 1 (NORMAL/PNEUMONIA) or 0 (Covid/Normal)
    probs = np.zeros((6, 2))
    probs[:, positive], probs[:, 1 - positive] = S6, 1 - S6
    d = evaluate.choose_threshold(y == positive, probs[:, positive], rule=rule, prevalence=0.5)
    reference = evaluate.choose_threshold(Y6, S6, rule=rule, prevalence=0.5)
    assert d["threshold"] == pytest.approx(reference["threshold"])
    if expected is not None:
        assert d["threshold"] == pytest.approx(expected)
    pred = evaluate.decide(probs, d["threshold"], positive)
    assert np.array_equal(pred == positive, S6 >= d["threshold"])  # disease called where p(disease) >= threshold
