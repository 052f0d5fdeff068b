"""Continue an Optuna study in hpo-engine: export it to CSV, create a group from it.

    python docs/import_from_optuna.py study.csv http://127.0.0.1:8000

The CSV is what `study.trials_dataframe().to_csv("study.csv")` writes: one row
per trial, the params in `params_<name>` columns, the objective in `value`,
the trial's `state`. Finished trials become the group's imported results;
grid and random search skip them, bo and tpe learn from them.
"""

import csv
import sys

import httpx

HPTUNING = {
    "concurrency": 4,
    "tpe": {"n_experiments": 40, "metric": {"name": "loss", "optimization": "minimize"}},
    "matrix": {"lr": {"loguniform": [-9, -1]}, "units": {"values": [32, 64, 128]}},
}


def trials_from_csv(path: str) -> list[dict]:
    trials = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["state"] not in ("COMPLETE", "FAIL"):
                continue  # running or pruned trials of the study are left behind
            params = {"lr": float(row["params_lr"]), "units": int(row["params_units"])}
            values = {"loss": float(row["value"])} if row["value"] else {}
            status = "succeeded" if row["state"] == "COMPLETE" else "failed"
            trials.append({"params": params, "values": values, "status": status})
    return trials


def main(path: str, url: str) -> dict:
    body = {"name": "continued from optuna", "hptuning": HPTUNING, "trials": trials_from_csv(path)}
    response = httpx.post(f"{url}/api/v1/groups", json=body)
    response.raise_for_status()
    return response.json()


if __name__ == "__main__":
    group = main(sys.argv[1], sys.argv[2])
    sys.stdout.write(f"group {group['id']}: {group['counts']['succeeded']} results imported\n")
