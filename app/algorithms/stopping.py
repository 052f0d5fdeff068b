"""Early-stopping rules: per-trial policies, the group threshold and the failure share.

Everything here is a pure function of numbers the service hands over: a trial's own
history of one metric, the other trials' values of that metric at the same step, and
the normalised policy dict from the spec (`kind` plus `evaluation_interval`,
`min_interval`, `min_samples` and, for truncation and diff, `percent`).

Polyaxon defines the policies only in its schema docstrings and docs (its servers
never ran them), so the exact rules below are hpo-engine's readings:

- median: stop when the trial's best value so far is strictly worse than the median
  of the other trials' values at the same step;
- average: the same with the mean;
- truncation: stop when the trial's value at the step ranks among the worst
  `percent` % of all trials that reported that step;
- diff: stop when the trial's value at the step trails the best value at that step
  by more than `percent` % of the best's magnitude.

Common choices, made where the sources are silent:

- A policy is only evaluated at the steps `should_evaluate` lets through; elsewhere
  the verdict is "keep going".
- Non-finite numbers are never evidence: a non-finite own value is never stopped,
  non-finite values of other trials are dropped before counting or comparing, and a
  non-finite value never meets a threshold.
- "Strictly worse" (median, average, diff) ignores differences within float rounding
  (a relative 1e-9), so a value that equals the median or the allowed gap in decimal
  terms is not stopped because a sum came out one ulp off.
- Percentages are read as the decimal the user wrote (`29` or `14.3` exactly), so
  `floor(percent / 100 * n)` and "reaches percent % of n" do not suffer binary
  rounding at exact boundaries.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "POLICY_KINDS",
    "Verdict",
    "evaluate_policy",
    "failure_share_exceeded",
    "should_evaluate",
    "threshold_met",
]

POLICY_KINDS: tuple[str, ...] = ("median", "average", "truncation", "diff")

# Differences below this relative size are float noise from the mean/median/percent
# arithmetic, not a real gap between two values.
_REL_TOL = 1e-9


@dataclass(frozen=True)
class Verdict:
    """The outcome of one policy check for one trial at one step.

    Attributes:
        stop: True when the trial should be stopped now.
        reason: Why it is stopped, for the trial's status message; None when it is not.
    """

    stop: bool
    reason: str | None = None


# --------------------------------------------------------------------------- helpers


def _exact_percent(percent: float) -> Fraction:
    """`percent` as the decimal the user wrote: 14.3 is 143/10, not the nearest binary float."""
    # repr of a float is its shortest round-tripping decimal, i.e. what was written.
    return Fraction(repr(float(percent)))


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _trials(count: int) -> str:
    return f"{count} other trial" if count == 1 else f"{count} other trials"


def _is_worse(value: float, reference: float, *, maximize: bool) -> bool:
    """True when `value` is strictly worse than `reference` by more than rounding noise."""
    if math.isclose(value, reference, rel_tol=_REL_TOL, abs_tol=0.0):
        return False
    return value < reference if maximize else value > reference


def _positive_int(policy: Mapping[str, Any], key: str, default: int | None) -> int:
    value = policy.get(key)
    if value is None:
        if default is None:
            raise ValueError(f"policy {policy.get('kind')!r} needs `{key}`")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"policy `{key}` must be a positive integer, received {value!r}")
    return value


def _percent(policy: Mapping[str, Any]) -> float:
    value = policy.get("percent")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"policy {policy.get('kind')!r} needs a numeric `percent`")
    if not 0 < value <= 100:
        raise ValueError(f"policy `percent` must be in (0, 100], received {value!r}")
    return float(value)


def _value_at(own: Sequence[tuple[int, float]], step: int) -> float:
    """The trial's value at `step`; when a step was reported twice, the later report."""
    for own_step, value in reversed(own):
        if own_step == step:
            return float(value)
    raise ValueError(f"the trial's history has no value at step {step}")


# --------------------------------------------------------------------------- public API


def threshold_met(value: float, threshold: float, *, maximize: bool) -> bool:
    """Whether a reported value meets an early-stopping entry's `value`.

    As in Polyaxon, the comparison includes equality: `value >= threshold` when
    maximizing and `value <= threshold` when minimizing.

    Args:
        value: The metric value a trial reported.
        threshold: The entry's `value`.
        maximize: True when the entry's optimization is `maximize`.

    Returns:
        True when the threshold is met. A non-finite value never meets it: a
        diverged loss of -inf must not end a whole group as a success.
    """
    if not math.isfinite(value):
        return False
    return value >= threshold if maximize else value <= threshold


def failure_share_exceeded(failed: int, planned: int | None, finished: int, percent: float) -> bool:
    """Whether `failure_early_stopping` should stop the group.

    The share is counted against the group's planned trials when the group has a
    fixed plan (grid, random), and against the trials finished so far otherwise,
    since an open-ended group has no other denominator. "Reaches" includes equality:
    with 10 % of 20 planned trials, the second failure stops the group.

    Args:
        failed: Trials of the group that failed.
        planned: Trials the group plans to run in total, or None without a fixed plan.
        finished: Trials that have ended in any way, failed ones included.
        percent: The `percent` of `failure_early_stopping`, in (0, 100].

    Returns:
        True when `failed` is at least `percent` % of the denominator. Always False
        while no trial has failed, even with an empty denominator.

    Raises:
        ValueError: On a negative count or a percent outside (0, 100].
    """
    if failed < 0 or finished < 0 or (planned is not None and planned < 0):
        raise ValueError("trial counts cannot be negative")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], received {percent!r}")
    if failed < 1:
        return False
    base = finished if planned is None else planned
    # failed / base >= percent / 100, kept in integers and exact fractions.
    return failed * 100 >= _exact_percent(percent) * base


def should_evaluate(policy: Mapping[str, Any], step: int, n_others: int) -> bool:
    """The gate every policy kind shares: is this step one where the policy runs?

    A policy runs at a step when all of these hold:

    - `step >= min_interval` (default: `evaluation_interval`), so a trial gets a
      warm-up before it can be judged;
    - `step % evaluation_interval == 0`;
    - `n_others >= min_samples` (default 1): there are enough other trials at this
      step to compare with.

    Args:
        policy: The normalised policy dict (missing or None optional keys take the
            defaults above).
        step: The step just reported.
        n_others: How many other trials reported a value at exactly this step.

    Returns:
        True when the policy should be evaluated.

    Raises:
        ValueError: When `evaluation_interval` is missing or an interval or sample
            count is not a positive integer.
    """
    interval = _positive_int(policy, "evaluation_interval", None)
    min_interval = _positive_int(policy, "min_interval", interval)
    min_samples = _positive_int(policy, "min_samples", 1)
    return step >= min_interval and step % interval == 0 and n_others >= min_samples


def evaluate_policy(
    policy: Mapping[str, Any],
    *,
    metric: str,
    maximize: bool,
    step: int,
    own: Sequence[tuple[int, float]],
    others: Sequence[float],
) -> Verdict:
    """Decide whether a trial that just reported `metric` at `step` should stop.

    The kinds (the better direction follows `maximize`):

    - `median`: stop when the trial's best value over its history up to and
      including `step` is strictly worse than the median of `others`. Best-so-far
      (not the last value) is used so that a noisy dip does not stop a trial that
      has already shown it can do well.
    - `average`: the same with the mean of `others`.
    - `truncation`: rank the trial's value at `step` among `others` plus itself,
      `n = len(others) + 1` trials in all, and stop it when it is among the worst
      `floor(percent / 100 * n)`. At least one trial is always kept, so a lone trial
      is never stopped. Ties are resolved in the trial's favour: it is stopped only
      when the kept places are all taken by trials strictly better than it.
    - `diff`: let `best` be the best of `others` plus the trial's own value at
      `step`. Stop when the trial trails `best` by more than `|best| * percent / 100`;
      when `best` is 0 the relative gap is meaningless, so the allowed gap is the
      absolute `percent / 100`.

    For every kind, a step that `should_evaluate` rejects gives `Verdict(False)`.
    The gate counts only finite values of `others`; those are also the only ones
    compared with. A trial whose own value at `step` is not finite is not stopped
    (nor is a median/average trial without a finite value so far).

    Args:
        policy: The normalised policy dict, with `kind` one of median, average,
            truncation, diff.
        metric: The metric's name, used in the reason.
        maximize: True when larger values are better.
        step: The step just reported.
        own: This trial's (step, value) history of `metric`, including the point at
            `step`. Points after `step` are ignored; when `step` appears twice, the
            later point is the value at `step`.
        others: The other trials' values of `metric` at exactly `step`, one per trial.

    Returns:
        `Verdict(True, reason)` when the trial should stop, `Verdict(False)` otherwise.

    Raises:
        ValueError: On an unknown kind, a malformed policy, or an `own` history
            without a point at `step`.
    """
    kind = policy.get("kind")
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown early-stopping policy kind {kind!r}")
    # Validate the kind's own fields up front, so a bad policy fails on every step,
    # not only on the steps that pass the gate.
    percent = _percent(policy) if kind in ("truncation", "diff") else 0.0
    value = _value_at(own, step)

    peers = [float(v) for v in others if math.isfinite(v)]
    if not should_evaluate(policy, step, len(peers)) or not math.isfinite(value):
        return Verdict(False)

    if kind in ("median", "average"):
        return _central(kind, metric, maximize, step, own, peers)
    if kind == "truncation":
        return _truncation(metric, maximize, step, value, peers, percent)
    return _diff(metric, maximize, step, value, peers, percent)


# --------------------------------------------------------------------------- the kinds


def _central(
    kind: str,
    metric: str,
    maximize: bool,
    step: int,
    own: Sequence[tuple[int, float]],
    peers: list[float],
) -> Verdict:
    history = [float(v) for s, v in own if s <= step and math.isfinite(v)]
    if not history:
        return Verdict(False)
    best = max(history) if maximize else min(history)
    if kind == "median":
        center = float(np.median(peers))
    else:
        # fsum is correctly rounded, so the mean of equal values is that value exactly.
        center = math.fsum(peers) / len(peers)
    if not _is_worse(best, center, maximize=maximize):
        return Verdict(False)
    label = "median" if kind == "median" else "mean"
    return Verdict(
        True,
        f"{kind} rule: best {metric} {_fmt(best)} at step {step} is worse than the "
        f"{label} {_fmt(center)} of {_trials(len(peers))}",
    )


def _truncation(
    metric: str, maximize: bool, step: int, value: float, peers: list[float], percent: float
) -> Verdict:
    total = len(peers) + 1
    # Keep at least one trial whatever the percent; with one trial nothing is cut.
    cut = min(math.floor(_exact_percent(percent) * total / 100), total - 1)
    if cut < 1:
        return Verdict(False)
    better = sum(1 for v in peers if (v > value if maximize else v < value))
    # The trial's place with ties in its favour is `better` (0-based). It is cut only
    # when even that place falls past the kept ones.
    if better < total - cut:
        return Verdict(False)
    return Verdict(
        True,
        f"truncation rule: {metric} {_fmt(value)} at step {step} ranks {better + 1} of "
        f"{total}, within the worst {cut} ({percent:g}%)",
    )


def _diff(
    metric: str, maximize: bool, step: int, value: float, peers: list[float], percent: float
) -> Verdict:
    candidates = [*peers, value]
    best = max(candidates) if maximize else min(candidates)
    gap = best - value if maximize else value - best
    allowed = abs(best) * percent / 100 if best != 0 else percent / 100
    # "By more than": a gap equal to the allowance (up to rounding) is not stopped.
    if gap <= allowed or math.isclose(gap, allowed, rel_tol=_REL_TOL, abs_tol=0.0):
        return Verdict(False)
    return Verdict(
        True,
        f"diff rule: {metric} {_fmt(value)} at step {step} trails the best {_fmt(best)} "
        f"by {_fmt(gap)}, more than the {percent:g}% allowed ({_fmt(allowed)})",
    )
