"""bench/report.py: a goal stated against a baseline of the same run is met up to its ratio,
and a run that misses a goal names the figure, its value and the goal. No Temporal, no Docker."""

from __future__ import annotations

import io

from rich.console import Console

from bench.report import Report


def quiet_report() -> Report:
    return Report(Console(file=io.StringIO()))


def test_a_goal_against_a_baseline_is_met_up_to_its_ratio():
    report = quiet_report()
    at = report.figure("at the limit", 15.0, "ms", at_most=1.5, baseline_name="floor", baseline=10.0)
    over = report.figure("over the limit", 15.1, "ms", at_most=1.5, baseline_name="floor", baseline=10.0)
    assert (at.met, over.met) == (True, False)


def test_a_goal_against_a_baseline_says_the_ratio_and_the_baseline():
    figure = quiet_report().figure("a turn", 30.0, "ms", at_most=0.3,
                                   baseline_name="pydantic-ai", baseline=100.0)
    assert figure.goal == "≤ 0.3x pydantic-ai (baseline ÷ value ≥ 3.33)"


def test_a_run_that_meets_every_goal_names_no_figure():
    report = quiet_report()
    report.figure("met", 1.0, "ms", goal="≤ 2 ms", met=True)
    report.figure("no goal", 3.0, "ms")
    assert report.missed() == []


def test_a_missed_goal_is_named_with_its_value_its_goal_and_its_baseline():
    report = quiet_report()
    report.figure("met", 1.0, "ms", goal="≤ 2 ms", met=True)
    report.figure("workflow task processing", 14.46, "ms", at_most=1.5,
                  baseline_name="a workflow that does nothing", baseline=8.88)
    assert report.missed() == [
        "goal missed: workflow task processing is 14.46 ms, the goal ≤ 1.5x a workflow that "
        "does nothing (baseline ÷ value ≥ 0.67); a workflow that does nothing: 8.88 ms"]
