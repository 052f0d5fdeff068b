"""Our model-based searches on the quality functions, in-process: no service, no database.

A quick loop for working on `app/algorithms/bayes.py` and `tpe.py`: a 60-trial run
takes about a second, so 30 or 40 seeds answer "is this change better?" in a minute,
where `bench/quality.py` (through HTTP, the figures the README reports) takes a
quarter of an hour. Workers are simulated: `--workers` configurations are out at
once and the oldest finishes first, which is close to, not the same as, what
concurrent clients of the service see.

    python bench/inprocess.py --algo bo --function hartmann6 --seeds 30
    python bench/inprocess.py --algo bo --function branin --workers 4 \\
        --section '{"utility_function": {"acquisition_function": "ei", "eps": 0.0}}'
    python bench/inprocess.py --algo tpe --function mixed --seeds 40 --optuna --raw optuna.json
    python bench/inprocess.py --algo tpe --function mixed --seeds 40 --against optuna.json

Prints the median regret at 30 trials and at --trials, how many seeds end within 0.05
of the optimum (for Hartmann6: found the global optimum's basin), how many stall
above a regret of 1, and the mean regret. With `--optuna`, Optuna's workers are
simulated the same way, through its ask-and-tell interface.
"""

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (the functions and their optima live there)

from app.algorithms import build_searcher  # noqa: E402
from app.algorithms.base import Observation  # noqa: E402

NEAR = 0.05  # a regret below this: the run found the global optimum's basin
STALLED = 1.0  # a regret above this at the end: the run stalled far from any good basin


def normalised_matrix(problem: quality.Problem) -> dict[str, Any]:
    """The problem's matrix as the service stores it (uniform bounds as low/high)."""
    out: dict[str, Any] = {}
    for name, option in problem.matrix().items():
        if "uniform" in option:
            low, high = option["uniform"]
            out[name] = {"uniform": {"low": low, "high": high}}
        else:
            out[name] = option
    return out


def run_ours(
    problem: quality.Problem,
    algo: str,
    seed: int,
    workers: int,
    trials: int,
    section: Mapping[str, Any],
) -> list[float]:
    """Best value after each finished trial."""
    metric = {"name": "y", "optimization": "minimize"}
    if algo == "bo":
        spec = {"n_initial_trials": 10, "n_iterations": trials - 10, "metric": metric}
    else:
        spec = {"n_experiments": trials, "n_initial_trials": 10, "metric": metric}
    spec.update(section)
    searcher = build_searcher(algo, {"matrix": normalised_matrix(problem), algo: spec}, seed)
    optimizer = searcher.optimizer
    observations: list[Observation] = []
    running: list[dict[str, Any]] = []
    taken: set[str] = set()
    proposed = 0
    while len(observations) < trials:
        while len(running) < workers and proposed < trials:
            (pick,) = optimizer.suggest(observations, running, taken, 1, draw_index=proposed)
            taken.add(pick.params_hash)
            running.append(pick.params)
            proposed += 1
        params = running.pop(0)
        observations.append(Observation(params, problem.evaluate(params)))
    return list(np.minimum.accumulate([o.value for o in observations]))


def run_optuna(
    problem: quality.Problem, algo: str, seed: int, workers: int, trials: int
) -> list[float]:
    """Optuna's GPSampler or TPESampler with its defaults, workers simulated as for ours."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = (
        optuna.samplers.GPSampler(seed=seed)
        if algo == "bo"
        else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(sampler=sampler)
    running: list[tuple[Any, dict[str, Any]]] = []
    values: list[float] = []
    asked = 0
    while len(values) < trials:
        while len(running) < workers and asked < trials:
            trial = study.ask()
            running.append((trial, quality._optuna_params(trial, problem)))
            asked += 1
        trial, params = running.pop(0)
        values.append(problem.evaluate(params))
        study.tell(trial, values[-1])
    return list(np.minimum.accumulate(values))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algo", choices=("bo", "tpe"), default="bo")
    parser.add_argument("--function", choices=tuple(quality.PROBLEMS), default="hartmann6")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds F..F+N-1")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--section", default="{}", help="JSON merged into the algorithm's section")
    parser.add_argument(
        "--optuna", action="store_true", help="run Optuna's sampler of the same kind instead"
    )
    parser.add_argument("--raw", type=Path, help="write each seed's final regret here (JSON)")
    parser.add_argument(
        "--against",
        type=Path,
        help="a --raw file of another run: print the one-sided Mann-Whitney p that this "
        "run's final regrets are larger",
    )
    args = parser.parse_args(argv)
    problem = quality.PROBLEMS[args.function]
    optimum = {"branin": quality.BRANIN_OPTIMUM, "hartmann6": quality.HARTMANN6_OPTIMUM}.get(
        args.function
    )
    if optimum is None:
        optimum, _ = quality.mixed_optimum()
    section = json.loads(args.section)
    started = time.perf_counter()
    at_30, at_end = [], []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if args.optuna:
            best = run_optuna(problem, args.algo, seed, args.workers, args.trials)
        else:
            best = run_ours(problem, args.algo, seed, args.workers, args.trials, section)
        at_30.append(best[min(29, len(best) - 1)] - optimum)
        at_end.append(best[-1] - optimum)
        print(f"seed {seed}: regret {at_end[-1]:.3g}", file=sys.stderr)
    who = f"optuna {args.algo}" if args.optuna else f"hpo {args.algo} {json.dumps(section)}"
    print(
        f"{args.function}, {args.workers} worker(s), {who}: median regret "
        f"{np.median(at_30):.3g} at 30 trials, {np.median(at_end):.3g} at {args.trials}; "
        f"within {NEAR} of the optimum: {sum(r < NEAR for r in at_end)} of {args.seeds} "
        f"seeds, stalled above {STALLED}: {sum(r > STALLED for r in at_end)}; mean regret "
        f"{np.mean(at_end):.3g}; {time.perf_counter() - started:.0f} s"
    )
    if args.raw:
        first = args.first_seed
        seeds = list(range(first, first + args.seeds))
        args.raw.write_text(json.dumps({"run": who, "seeds": seeds, "regret": at_end}))
    if args.against:
        from scipy.stats import mannwhitneyu

        other = json.loads(args.against.read_text())
        p = mannwhitneyu(at_end, other["regret"], alternative="greater").pvalue
        print(
            f"against {other['run']} (median {np.median(other['regret']):.3g}, "
            f"{len(other['regret'])} seeds): p = {p:.3f} that this run's regrets are larger"
        )


if __name__ == "__main__":
    main()
