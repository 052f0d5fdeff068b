"""A stand-in for a training script, run by `hpo agent` in the e2e tests.

    python train_script.py --case CASE [--steps N] [--pause SECONDS] [--tag TAG]

It checks that its argv and the agent's environment agree (exit 4 if not), then
prints one `hpo:` metric line per step. The case decides how it goes:

- `good*`: loss 1/step, exits 0;
- `crash`: one step, then an uncaught error (exit 1);
- `slow`: loss 10 at every step, each step twice as long, for 100 steps: a run
  that only ends because somebody stops it;
- `long*`: loss 1 at every step for a long time;
- `stubborn`: like `long`, but it ignores SIGTERM (only SIGKILL ends it).

`--tag` only marks the process, so a test can look for leftovers.
"""

import argparse
import json
import os
import signal
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.3)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    params = json.loads(os.environ["HPO_PARAMS"])
    if params.get("case") != args.case or not os.environ.get("HPO_TRIAL_ID", "").isdigit():
        sys.stderr.write(f"argv and environment disagree: {args.case!r} vs {params!r}\n")
        return 4
    if not os.environ.get("HPO_URL", "").startswith("http"):
        return 4

    steps, pause, loss = args.steps, args.pause, None
    if args.case == "slow":
        steps, pause = 100, pause * 2
    elif args.case.startswith("long") or args.case == "stubborn":
        steps = 1000
    if args.case == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    for step in range(1, steps + 1):
        time.sleep(pause)
        if args.case.startswith("good"):
            loss = 1 / step
        elif args.case == "slow":
            loss = 10.0
        else:
            loss = 1.0
        sys.stdout.write(f"epoch {step}: training\n")
        sys.stdout.write(f"hpo: loss={loss} step={step}\n")
        sys.stdout.flush()
        if args.case == "crash":
            raise RuntimeError("the model diverged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
