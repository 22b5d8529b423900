"""`report` from storage alone: fronts, Optuna plots, a top-trials summary; tolerant of old studies."""

import io

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from lungsearch import report
from lungsearch.cli import main

DISTS = {"conv_blocks": IntDistribution(1, 5), "dropout": FloatDistribution(0.0, 0.5),
         "optimizer": CategoricalDistribution(["adam", "sgd"])}


def _trial(value, acc, seconds, params_count, blocks, dropout, opt, state=TrialState.COMPLETE, attrs=True):
    user = {"val_accuracy": acc, "train_seconds": seconds, "param_count": params_count, "epochs": 3} if attrs else {}
    return create_trial(
        state=state, value=value if state == TrialState.COMPLETE else None,
        params={"conv_blocks": blocks, "dropout": dropout, "optimizer": opt}, distributions=DISTS, user_attrs=user,
        intermediate_values={0: value * 0.8, 1: value} if value is not None else {},
    )


@pytest.fixture
def study(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = optuna.create_study(storage=url, study_name="made", direction="maximize")
    s.set_user_attr("config", {"metric": "val_auc"})
    for t in (
        _trial(0.90, 0.85, 10.0, 5_000, 2, 0.1, "adam"),
        _trial(0.95, 0.88, 30.0, 50_000, 4, 0.2, "adam"),   # most accurate, slowest
        _trial(0.80, 0.80, 5.0, 2_000, 1, 0.3, "sgd"),      # quickest, smallest
        _trial(0.85, 0.79, 20.0, 60_000, 3, 0.4, "sgd"),    # dominated on every front
        _trial(0.70, None, None, None, 2, 0.5, "adam", state=TrialState.PRUNED),
        _trial(0.88, 0.83, 12.0, 7_000, 2, 0.25, "sgd", attrs=False),  # an old trial: no user attrs at all
    ):
        s.add_trial(t)
    return url, s


def test_fronts_match_a_hand_reading(study):
    _, s = study
    df = report.trials_frame(s)
    assert report.front_frame(df, "val_accuracy", "train_seconds")["trial"].tolist() == [2, 0, 1]
    assert report.front_frame(df, "value", "param_count")["trial"].tolist() == [2, 0, 1]
    assert 3 not in report.front_frame(df, "value", "train_seconds")["trial"].tolist()


def test_report_writes_csv_png_html_and_prints_top_trials(study, tmp_path):
    _, s = study
    stream = io.StringIO()
    paths = report.write_report(s, str(tmp_path / "rep"), stream=stream)
    names = {p.split("/")[-1] for p in paths}
    for stem in ("pareto", "pareto_val_accuracy_vs_param_count", "pareto_objective_vs_train_seconds", "pareto_objective_vs_param_count"):
        assert {f"{stem}.csv", f"{stem}.png", f"{stem}.html"} <= names
    assert {"optimization_history.html", "intermediate_values.html", "param_importances.html", "trials.csv"} <= names
    front = pd.read_csv(tmp_path / "rep" / "pareto.csv")
    assert front["trial"].tolist() == [2, 0, 1]
    text = stream.getvalue()
    assert text.index("#1 ") < text.index("#0 ") < text.index("#5 ")  # best first; the attr-less trial is listed too
    assert "param importances" in text and "conv_blocks=" in text


def test_report_on_a_study_too_small_for_importances_and_fronts(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    s = optuna.create_study(storage=url, study_name="old", direction="maximize")  # no config, no attrs
    s.add_trial(_trial(0.6, 0.6, 3.0, 100, 1, 0.1, "adam", attrs=False))
    assert main(["report", "--storage", url, "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "param_importances.html skipped" in out and "pareto.png/.html skipped" in out
    assert (tmp_path / "rep" / "optimization_history.html").is_file()
    assert pd.read_csv(tmp_path / "rep" / "trials.csv")["trial"].tolist() == [0]


def test_a_degenerate_trial_is_marked_and_kept_off_every_front(study, tmp_path):
    _, s = study
    s.set_user_attr("data", {"class_counts": {"val": {"NORMAL": 30, "PNEUMONIA": 70}}})  # majority rate 0.7
    s.add_trial(_trial(0.75, 0.3, 1.0, 1_000, 1, 0.1, "sgd"))  # quickest and smallest, but argmax says NORMAL for all
    s.add_trial(_trial(0.70, 0.7, 2.0, 1_500, 1, 0.2, "sgd"))  # exactly the majority rate: always PNEUMONIA
    df = report.trials_frame(s)
    assert report.majority_rate(s) == (0.7, "PNEUMONIA")
    assert df.loc[df["degenerate"], "trial"].tolist() == [6, 7]
    for y in ("val_accuracy", "value"):
        for cost in ("train_seconds", "param_count"):
            assert not {6, 7} & set(report.front_frame(df, y, cost)["trial"])
    stream = io.StringIO()
    report.write_report(s, str(tmp_path / "rep"), stream=stream)
    text = stream.getvalue()
    assert "majority-class rate on validation: 0.7000 (always PNEUMONIA)" in text and "DEGENERATE" in text
    assert "val_acc: validation accuracy of the most probable class (argmax)" in text
    assert pd.read_csv(tmp_path / "rep" / "pareto.csv")["trial"].tolist() == [2, 0, 1]


def test_parameter_axes_are_log_in_png_and_html_alike_with_short_labels(study, tmp_path):
    _, s = study
    report.write_report(s, str(tmp_path / "rep"), stream=io.StringIO())
    df = report.trials_frame(s)
    assert report.log_x(df, "param_count") and not report.log_x(df, "train_seconds")  # 2,000 to 60,000 parameters
    html = (tmp_path / "rep" / "pareto_val_accuracy_vs_param_count.html").read_text()
    assert '"type":"log"' in html.replace(" ", "")
    assert '"type":"log"' not in (tmp_path / "rep" / "pareto.html").read_text().replace(" ", "")
    assert [report.count_label(v) for v in (500, 2_000, 20_000, 1_500_000)] == ["500", "2k", "20k", "1.5M"]


def test_index_html_holds_every_figure_and_links_every_file(study, tmp_path):
    _, s = study
    stream = io.StringIO()
    paths = report.write_report(s, str(tmp_path / "rep"), stream=stream)
    index = tmp_path / "rep" / "index.html"
    assert str(index) in paths
    page = index.read_text()
    for path in paths:
        if path != str(index):
            assert f'href="{path.split("/")[-1]}"' in page, path
    assert page.count('<img alt="pareto') == 4 and page.count('"data:image/png;base64,') >= 4  # the Pareto PNGs, inside
    assert "plotly.min.js" not in page.split("<h2>Files</h2>")[0] and len(page) > 3_000_000  # plotly.js inside, once
    assert "fewer than 20" in page and "fewer than 20" in stream.getvalue()  # the importance caveat
    # a separate figure copied out of its folder says what it misses instead of showing a blank page
    assert "lungsearch-needs-plotly" in (tmp_path / "rep" / "optimization_history.html").read_text()


def test_log_ticks_are_one_two_five_per_decade_around_the_values():
    assert report.log_ticks(22_371, 467_568) == [20_000, 50_000, 100_000, 200_000, 500_000]
    assert report.log_ticks(1_000, 5_000_000) == [1_000, 10_000, 100_000, 1_000_000, 10_000_000]  # many decades: powers only


def test_optuna_plots_name_the_objective(study, tmp_path):
    _, s = study
    report.write_report(s, str(tmp_path / "rep"), stream=io.StringIO())
    assert "val_auc" in (tmp_path / "rep" / "optimization_history.html").read_text()
    assert "Objective Value" not in (tmp_path / "rep" / "optimization_history.html").read_text()
