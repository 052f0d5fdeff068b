"""Early-stopping rules: the gate, each policy kind, thresholds and the failure share.

Every expected value here is worked out by hand in the comment beside it.
"""

import math
from collections.abc import Sequence
from typing import Any

import pytest

from app.algorithms.stopping import (
    Verdict,
    evaluate_policy,
    failure_share_exceeded,
    should_evaluate,
    threshold_met,
)


def policy(kind: str, **fields: Any) -> dict[str, Any]:
    """A normalised policy, evaluated at every step unless the test says otherwise."""
    return {"kind": kind, "evaluation_interval": 1, **fields}


def verdict(
    pol: dict[str, Any],
    own: Sequence[tuple[int, float]] | float,
    others: Sequence[float],
    *,
    maximize: bool,
    step: int = 2,
) -> Verdict:
    """Run a policy; a bare float for `own` is a single point at `step`."""
    history = [(step, own)] if isinstance(own, int | float) else list(own)
    return evaluate_policy(
        pol, metric="loss", maximize=maximize, step=step, own=history, others=others
    )


def stops(*args: Any, **kwargs: Any) -> bool:
    return verdict(*args, **kwargs).stop


# --------------------------------------------------------------------------- the gate


def test_gate_defaults_min_interval_to_the_evaluation_interval() -> None:
    pol = {"kind": "median", "evaluation_interval": 2}
    # Steps 2, 4, 6 are multiples of 2 and >= 2; 0 is a multiple but before the warm-up.
    assert [s for s in range(0, 7) if should_evaluate(pol, s, 1)] == [2, 4, 6]


def test_gate_min_interval_delays_the_first_evaluation() -> None:
    pol = {"kind": "median", "evaluation_interval": 2, "min_interval": 5}
    # Multiples of 2 from 5 on: 6, 8; 5 and 7 are not multiples.
    assert [s for s in range(0, 9) if should_evaluate(pol, s, 1)] == [6, 8]


def test_gate_min_interval_below_the_interval_still_needs_a_multiple() -> None:
    pol = {"kind": "median", "evaluation_interval": 4, "min_interval": 1}
    assert [s for s in range(0, 9) if should_evaluate(pol, s, 1)] == [4, 8]


def test_gate_min_samples_defaults_to_one() -> None:
    pol = {"kind": "median", "evaluation_interval": 1}
    assert not should_evaluate(pol, 3, 0)
    assert should_evaluate(pol, 3, 1)


def test_gate_min_samples_counts_other_trials() -> None:
    pol = {"kind": "median", "evaluation_interval": 1, "min_samples": 3}
    assert not should_evaluate(pol, 3, 2)
    assert should_evaluate(pol, 3, 3)


def test_gate_treats_none_fields_as_left_out() -> None:
    pol = {"kind": "median", "evaluation_interval": 3, "min_interval": None, "min_samples": None}
    assert not should_evaluate(pol, 0, 1)
    assert should_evaluate(pol, 3, 1)
    assert not should_evaluate(pol, 3, 0)


@pytest.mark.parametrize(
    "pol",
    [
        {"kind": "median"},
        {"kind": "median", "evaluation_interval": 0},
        {"kind": "median", "evaluation_interval": 2, "min_samples": -1},
    ],
)
def test_gate_rejects_a_malformed_policy(pol: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        should_evaluate(pol, 2, 1)


@pytest.mark.parametrize("kind", ["median", "average", "truncation", "diff"])
def test_every_kind_keeps_going_off_the_gate(kind: str) -> None:
    pol = {"kind": kind, "evaluation_interval": 2, "min_samples": 2, "percent": 50}
    # Minimizing, 9.0 is far worse than 1.0 and 2.0 under every kind at step 4 ...
    assert verdict(pol, 9.0, [1.0, 2.0], maximize=False, step=4).stop
    # ... but step 3 is not a multiple of 2, and one other trial is below min_samples.
    assert verdict(pol, 9.0, [1.0, 2.0], maximize=False, step=3) == Verdict(False)
    assert verdict(pol, 9.0, [1.0], maximize=False, step=4) == Verdict(False)


def test_gate_counts_only_finite_other_values() -> None:
    pol = policy("median", min_samples=2)
    # Two others, but one is NaN: only one usable sample, below min_samples.
    assert not stops(pol, 9.0, [1.0, math.nan], maximize=False)
    assert stops(pol, 9.0, [1.0, 1.5], maximize=False)


# --------------------------------------------------------------------------- median


def test_median_minimize() -> None:
    pol = policy("median")
    # Median of 0.5, 0.7, 0.9 is 0.7; best so far of (0.9, 0.8) is 0.8 > 0.7.
    got = verdict(pol, [(1, 0.9), (2, 0.8)], [0.5, 0.7, 0.9], maximize=False)
    assert got == Verdict(
        True, "median rule: best loss 0.8 at step 2 is worse than the median 0.7 of 3 other trials"
    )
    # 0.6 beats the median, and 0.7 equals it: strictly worse is needed.
    assert not stops(pol, [(1, 0.9), (2, 0.6)], [0.5, 0.7, 0.9], maximize=False)
    assert not stops(pol, [(1, 0.9), (2, 0.7)], [0.5, 0.7, 0.9], maximize=False)


def test_median_maximize_with_an_even_count() -> None:
    pol = policy("median")
    # Median of 1, 2, 3, 4 is 2.5.
    assert stops(pol, 2.4, [1.0, 2.0, 3.0, 4.0], maximize=True)
    assert not stops(pol, 2.5, [1.0, 2.0, 3.0, 4.0], maximize=True)
    assert not stops(pol, 2.6, [1.0, 2.0, 3.0, 4.0], maximize=True)


def test_median_uses_the_best_so_far_not_the_last_value() -> None:
    pol = policy("median")
    others = [0.7, 0.8, 0.9]  # median 0.8
    # Minimizing: the last value 0.95 is worse than 0.8, but the best so far, 0.5, is not.
    assert not stops(pol, [(1, 0.5), (2, 0.95)], others, maximize=False)
    # Maximizing: the last value 0.1 is below 0.8, but the best so far, 0.85, is above.
    assert not stops(pol, [(1, 0.85), (2, 0.1)], others, maximize=True)
    # Without the good early point, the same last values stop.
    assert stops(pol, [(1, 0.96), (2, 0.95)], others, maximize=False)
    assert stops(pol, [(1, 0.05), (2, 0.1)], others, maximize=True)


def test_median_ignores_history_after_the_step() -> None:
    pol = policy("median")
    # At step 2 the best so far is 0.9 (> median 0.8); the 0.1 at step 3 is not yet.
    assert stops(pol, [(1, 0.9), (2, 0.9), (3, 0.1)], [0.7, 0.8, 0.9], maximize=False)


def test_median_reason_is_singular_for_one_other_trial() -> None:
    got = verdict(policy("median"), 1.0, [2.0], maximize=True)
    assert got.reason == (
        "median rule: best loss 1 at step 2 is worse than the median 2 of 1 other trial"
    )


# --------------------------------------------------------------------------- average


def test_average_maximize_uses_the_mean() -> None:
    pol = policy("average")
    # Mean of 0.1, 0.2, 0.9 is 0.4 (the median would be 0.2): 0.3 < 0.4 stops.
    got = verdict(pol, 0.3, [0.1, 0.2, 0.9], maximize=True)
    assert got.stop
    assert got.reason == (
        "average rule: best loss 0.3 at step 2 is worse than the mean 0.4 of 3 other trials"
    )
    assert not stops(policy("median"), 0.3, [0.1, 0.2, 0.9], maximize=True)
    assert not stops(pol, 0.5, [0.1, 0.2, 0.9], maximize=True)


def test_average_minimize_uses_the_mean() -> None:
    pol = policy("average")
    # Mean of 1, 2, 9 is 4 (the median would be 2): 3 < 4 keeps going, 5 stops.
    assert not stops(pol, 3.0, [1.0, 2.0, 9.0], maximize=False)
    assert stops(policy("median"), 3.0, [1.0, 2.0, 9.0], maximize=False)
    assert stops(pol, 5.0, [1.0, 2.0, 9.0], maximize=False)


def test_average_uses_the_best_so_far() -> None:
    # Mean 4; the last value 6 is worse, but the best so far, 3, is not.
    assert not stops(policy("average"), [(1, 3.0), (2, 6.0)], [1.0, 2.0, 9.0], maximize=False)


@pytest.mark.parametrize("maximize", [True, False])
def test_average_equal_to_the_mean_up_to_rounding_is_kept(maximize: bool) -> None:
    # (0.1 + 0.2 + 0.3) / 3 is 0.19999999999999998 in floats; 0.2 is the mean.
    assert not stops(policy("average"), 0.2, [0.1, 0.2, 0.3], maximize=maximize)


# --------------------------------------------------------------------------- truncation


def test_truncation_minimize_cuts_the_worst_quarter() -> None:
    pol = policy("truncation", percent=25)
    # n = 4, floor(0.25 * 4) = 1: only the worst of the four is cut.
    got = verdict(pol, 0.5, [0.2, 0.3, 0.4], maximize=False)
    assert got == Verdict(
        True, "truncation rule: loss 0.5 at step 2 ranks 4 of 4, within the worst 1 (25%)"
    )
    assert not stops(pol, 0.35, [0.2, 0.3, 0.4], maximize=False)
    assert not stops(pol, 0.1, [0.2, 0.3, 0.4], maximize=False)


def test_truncation_maximize_cuts_the_worst_half() -> None:
    pol = policy("truncation", percent=50)
    others = [0.9, 0.8, 0.7]
    # n = 4, floor(0.5 * 4) = 2 cut: ranks 3 and 4 (0.75 ranks 3, 0.6 ranks 4).
    assert stops(pol, 0.6, others, maximize=True)
    assert stops(pol, 0.75, others, maximize=True)
    assert not stops(pol, 0.85, others, maximize=True)


def test_truncation_rounds_the_count_down() -> None:
    pol = policy("truncation", percent=25)
    # n = 3, floor(0.25 * 3) = 0: nobody is cut, even the clear worst.
    assert not stops(pol, 0.9, [0.1, 0.2], maximize=False)
    # n = 7, floor(0.25 * 7) = 1: only the worst.
    others = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert stops(pol, 0.9, others, maximize=False)
    assert not stops(pol, 0.55, others, maximize=False)


def test_truncation_reads_the_percent_as_written() -> None:
    pol = policy("truncation", percent=29.0)
    # n = 100, 29 % of 100 is exactly 29 cut and 71 kept (0.29 * 100 is 28.999... in
    # binary, which would cut only 28). 71 of the others (29..99) beat 28.5: rank 72.
    others = [float(v) for v in range(1, 100)]
    assert stops(pol, 28.5, others, maximize=True)
    # 70 others (30..99) beat 29.5: rank 71, the last kept place.
    assert not stops(pol, 29.5, others, maximize=True)


def test_truncation_never_stops_a_lone_trial() -> None:
    # No other trial: min_samples is at least 1, so the gate already keeps it going.
    assert verdict(policy("truncation", percent=99), 0.0, [], maximize=True) == Verdict(False)


def test_truncation_keeps_at_least_one_trial() -> None:
    pol = policy("truncation", percent=100)
    # n = 2, 100 % would cut both: one place is kept, so only the worse one is cut.
    assert not stops(pol, 0.9, [0.5], maximize=True)
    assert stops(pol, 0.1, [0.5], maximize=True)
    # n = 3, all tied: the single kept place is shared, nobody is strictly better.
    assert not stops(pol, 0.5, [0.5, 0.5], maximize=True)


def test_truncation_ties_with_a_kept_trial_are_kept() -> None:
    pol = policy("truncation", percent=50)
    # n = 4, 2 kept: 0.9 then 0.5, 0.5, 0.5 tied. Only one trial beats 0.5, so a
    # trial tied on 0.5 can take the second kept place.
    assert not stops(pol, 0.5, [0.9, 0.5, 0.5], maximize=True)
    assert not stops(pol, 0.5, [0.9, 0.5, 0.5], maximize=False)  # minimizing it is the best
    # Everyone tied: nobody is cut.
    assert not stops(pol, 0.5, [0.5, 0.5, 0.5], maximize=True)


def test_truncation_ties_among_the_cut_are_cut() -> None:
    pol = policy("truncation", percent=50)
    # n = 4, 2 kept: 0.9 and 0.8 beat 0.1, so the trial tied with the other 0.1 is cut.
    assert stops(pol, 0.1, [0.9, 0.8, 0.1], maximize=True)
    # Minimizing, 0.9 and 0.8 are the worst two, tied or not.
    assert stops(pol, 0.9, [0.1, 0.2, 0.9], maximize=False)


# --------------------------------------------------------------------------- diff


def test_diff_maximize() -> None:
    pol = policy("diff", percent=10)
    # Best 0.8, allowed gap 0.08: 0.7 trails by 0.1 (stop), 0.75 by 0.05 (keep).
    got = verdict(pol, 0.7, [0.8, 0.6], maximize=True)
    assert got == Verdict(
        True,
        "diff rule: loss 0.7 at step 2 trails the best 0.8 by 0.1, "
        "more than the 10% allowed (0.08)",
    )
    assert not stops(pol, 0.75, [0.8, 0.6], maximize=True)


def test_diff_minimize() -> None:
    pol = policy("diff", percent=10)
    # Best 0.5, allowed gap 0.05: 0.6 trails by 0.1 (stop), 0.54 by 0.04 (keep).
    assert stops(pol, 0.6, [0.5, 1.0], maximize=False)
    assert not stops(pol, 0.54, [0.5, 1.0], maximize=False)


def test_diff_a_gap_equal_to_the_allowance_is_kept() -> None:
    # Best 0.8, allowed 0.08; 0.8 - 0.72 is 0.08000000000000007 in floats.
    assert not stops(policy("diff", percent=10), 0.72, [0.8], maximize=True)


def test_diff_uses_the_magnitude_of_a_negative_best() -> None:
    pol = policy("diff", percent=10)
    # Maximizing, best -2.0, allowed |-2.0| * 10 % = 0.2: -2.3 trails by 0.3, -2.1 by 0.1.
    assert stops(pol, -2.3, [-2.0], maximize=True)
    assert not stops(pol, -2.1, [-2.0], maximize=True)
    # Minimizing, best -2.0: -1.7 trails by 0.3, -1.9 by 0.1.
    assert stops(pol, -1.7, [-2.0], maximize=False)
    assert not stops(pol, -1.9, [-2.0], maximize=False)


def test_diff_with_a_best_of_zero_uses_an_absolute_gap() -> None:
    pol = policy("diff", percent=5)
    # Best 0, allowed gap 0.05 in absolute terms (|0| * 5 % would stop anything behind).
    assert not stops(pol, -0.04, [0.0], maximize=True)
    assert stops(pol, -0.06, [0.0], maximize=True)
    assert not stops(pol, 0.04, [0.0, 1.0], maximize=False)
    assert stops(pol, 0.06, [0.0, 1.0], maximize=False)


@pytest.mark.parametrize("maximize", [True, False])
def test_diff_never_stops_the_best_trial(maximize: bool) -> None:
    own = 0.3 if maximize else 0.1
    assert not stops(policy("diff", percent=1), own, [0.1, 0.2, 0.3], maximize=maximize)


# --------------------------------------------------------------------------- guards


@pytest.mark.parametrize("kind", ["median", "average", "truncation", "diff"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("maximize", [True, False])
def test_a_non_finite_own_value_is_not_stopped(kind: str, bad: float, maximize: bool) -> None:
    pol = policy(kind, percent=50)
    assert verdict(pol, bad, [1.0, 2.0, 3.0], maximize=maximize) == Verdict(False)


def test_non_finite_values_of_others_are_left_out() -> None:
    pol = policy("median")
    # Finite others 0.5, 0.6: median 0.55, which 0.55 equals. Counting inf, the
    # median would be 0.6 and 0.55 would stop.
    assert not stops(pol, 0.55, [0.5, 0.6, math.inf], maximize=True)
    # For diff, an inf "best" would stop every finite trial.
    assert not stops(policy("diff", percent=10), 0.5, [0.5, math.inf], maximize=True)


def test_a_non_finite_earlier_value_does_not_count_as_best() -> None:
    # Maximizing, an earlier +inf would be an unbeatable best; only 0.1 counts.
    assert stops(policy("median"), [(1, math.inf), (2, 0.1)], [0.5, 0.6], maximize=True)


@pytest.mark.parametrize(
    "pol",
    [
        {"kind": "hyperband", "evaluation_interval": 1},
        {"kind": "truncation", "evaluation_interval": 1},
        {"kind": "diff", "evaluation_interval": 1, "percent": 0},
    ],
)
def test_a_malformed_policy_is_an_error(pol: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        verdict(pol, 1.0, [2.0], maximize=True)


def test_a_re_reported_step_uses_the_later_value() -> None:
    pol = policy("truncation", percent=50)
    # Step 2 was reported as 0.1, then again as 0.9. Minimizing against 0.2, 0.3, 0.4
    # (n = 4, 2 cut), 0.9 ranks 4 and is cut; the earlier 0.1 would rank 1.
    assert stops(pol, [(1, 0.5), (2, 0.1), (2, 0.9)], [0.2, 0.3, 0.4], maximize=False)
    assert not stops(pol, [(1, 0.5), (2, 0.9), (2, 0.1)], [0.2, 0.3, 0.4], maximize=False)


def test_a_history_without_the_step_is_an_error() -> None:
    with pytest.raises(ValueError, match="step 2"):
        verdict(policy("median"), [(1, 1.0)], [2.0], maximize=True, step=2)


# --------------------------------------------------------------------------- threshold


def test_threshold_maximize_includes_equality() -> None:
    assert threshold_met(0.9, 0.9, maximize=True)
    assert threshold_met(0.91, 0.9, maximize=True)
    assert not threshold_met(0.89, 0.9, maximize=True)


def test_threshold_minimize_includes_equality() -> None:
    assert threshold_met(0.1, 0.1, maximize=False)
    assert threshold_met(0.09, 0.1, maximize=False)
    assert not threshold_met(0.11, 0.1, maximize=False)


@pytest.mark.parametrize(
    ("value", "maximize"),
    [(math.nan, True), (math.nan, False), (math.inf, True), (-math.inf, False)],
)
def test_threshold_is_never_met_by_a_non_finite_value(value: float, maximize: bool) -> None:
    assert not threshold_met(value, 0.5, maximize=maximize)


# --------------------------------------------------------------------------- failure share


def test_failure_share_against_the_plan() -> None:
    # 10 % of 20 planned is 2 failures; finished does not matter with a plan.
    assert not failure_share_exceeded(1, 20, 1, 10)
    assert failure_share_exceeded(2, 20, 2, 10)
    assert failure_share_exceeded(3, 20, 3, 10)
    # 2 of 2 finished would be 100 %, but 2 of 100 planned is only 2 %.
    assert not failure_share_exceeded(2, 100, 2, 10)


def test_failure_share_without_a_plan_uses_finished_trials() -> None:
    # 25 % of 4 finished is 1 failure; of 5 finished, 1 is 20 %.
    assert failure_share_exceeded(1, None, 4, 25)
    assert not failure_share_exceeded(1, None, 5, 25)
    assert failure_share_exceeded(3, None, 3, 100)
    assert not failure_share_exceeded(2, None, 3, 100)


def test_failure_share_needs_a_failure() -> None:
    assert not failure_share_exceeded(0, None, 0, 10)
    assert not failure_share_exceeded(0, 0, 0, 10)
    assert not failure_share_exceeded(0, None, 5, 0.5)


@pytest.mark.parametrize(
    ("failed", "planned", "percent", "expected"),
    # 7 % of 100 is 7 (0.07 * 100 is 7.000000000000001 in floats); 7.2 % of 125 is 9.
    [(7, 100, 7.0, True), (6, 100, 7.0, False), (9, 125, 7.2, True), (8, 125, 7.2, False)],
)
def test_failure_share_reads_the_percent_as_written(
    failed: int, planned: int, percent: float, expected: bool
) -> None:
    assert failure_share_exceeded(failed, planned, failed, percent) is expected


@pytest.mark.parametrize(
    ("failed", "planned", "finished", "percent"),
    [(-1, None, 0, 10), (1, -1, 1, 10), (1, None, -1, 10), (1, None, 1, 0), (1, None, 1, 101)],
)
def test_failure_share_rejects_bad_input(
    failed: int, planned: int | None, finished: int, percent: float
) -> None:
    with pytest.raises(ValueError):
        failure_share_exceeded(failed, planned, finished, percent)
