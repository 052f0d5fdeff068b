"""Trials from the user: enqueued configurations, imported results, and mapping groups."""

from fastapi.testclient import TestClient

from tests.integration.helpers import complete, create_group, group, suggest

GRID = {"concurrency": 4, "matrix": {"lr": {"values": [0.1, 0.01]}, "units": {"values": [8, 16]}}}


def test_enqueued_configuration_goes_first_and_is_not_repeated(client: TestClient) -> None:
    g = create_group(client, GRID)
    enqueued = client.post(
        f"/api/v1/groups/{g['id']}/trials", json={"params": {"lr": 0.01, "units": 16}}
    )
    assert enqueued.status_code == 201, enqueued.text
    assert enqueued.json()["status"] == "pending" and enqueued.json()["source"] == "user"
    first = suggest(client, g["id"], count=1)["trials"][0]
    assert first["id"] == enqueued.json()["id"] and first["params"] == {"lr": 0.01, "units": 16}
    rest = suggest(client, g["id"], count=4)["trials"]
    assert [t["params"] for t in rest] == [
        {"lr": 0.1, "units": 8},
        {"lr": 0.1, "units": 16},
        {"lr": 0.01, "units": 8},
    ]
    for t in [first, *rest]:
        complete(client, t["id"])
    # The grid's own draw of the enqueued cell is skipped, and the group ends.
    assert suggest(client, g["id"]) == {"trials": [], "group_status": "done", "retry_after": None}
    assert group(client, g["id"])["counts"]["succeeded"] == 4


def test_enqueued_params_must_fit_the_space(client: TestClient) -> None:
    g = create_group(client, GRID)
    response = client.post(
        f"/api/v1/groups/{g['id']}/trials", json={"params": {"lr": 0.5, "layers": 2}}
    )
    assert response.status_code == 422
    paths = sorted(e["path"] for e in response.json()["errors"])
    assert paths == ["params.layers", "params.lr", "params.units"]


def test_hyperband_groups_take_no_enqueued_trials(client: TestClient) -> None:
    spec = {
        "hyperband": {
            "max_iter": 9,
            "eta": 3,
            "resource": {"name": "epochs", "type": "int"},
            "metric": {"name": "loss"},
        },
        "matrix": {"lr": {"uniform": [0, 1]}},
    }
    g = create_group(client, spec)
    response = client.post(f"/api/v1/groups/{g['id']}/trials", json={"params": {"lr": 0.5}})
    assert response.status_code == 409


def test_imported_results_are_skipped_by_grid_and_count_for_the_best(client: TestClient) -> None:
    past = [
        {"params": {"lr": 0.1, "units": 8}, "values": {"loss": 0.2}},
        {"params": {"lr": 0.01, "units": 8}, "values": {"loss": 0.9}, "status": "failed"},
    ]
    g = create_group(
        client, GRID, trials=past, objective={"name": "loss", "optimization": "minimize"}
    )
    assert g["counts"]["succeeded"] == 1 and g["counts"]["failed"] == 1
    assert g["best_trial"]["source"] == "import" and g["best_trial"]["objective"] == 0.2
    handed = suggest(client, g["id"], count=4)["trials"]
    assert [t["params"] for t in handed] == [{"lr": 0.1, "units": 16}, {"lr": 0.01, "units": 16}]
    for t in handed:
        complete(client, t["id"], {"loss": 0.5})
    assert group(client, g["id"])["status"] == "done"


def test_imported_params_are_checked(client: TestClient) -> None:
    response = client.post(
        "/api/v1/groups",
        json={"hptuning": GRID, "trials": [{"params": {"lr": 0.3, "units": 8}}]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "trials.0.params.lr"


def test_mapping_runs_each_listed_configuration_once(client: TestClient) -> None:
    configurations = [{"lr": 0.1, "optimizer": "adam"}, {"lr": 0.3, "optimizer": "sgd"}]
    g = create_group(client, {"concurrency": 5, "mapping": {"values": configurations}})
    assert g["algorithm"] == "mapping" and g["planned_trials"] == 2
    handed = suggest(client, g["id"], count=5)["trials"]
    assert [t["params"] for t in handed] == configurations
    for t in handed:
        complete(client, t["id"])
    assert group(client, g["id"])["status"] == "done"


def test_a_study_exported_from_optuna_continues_here(pg_server, tmp_path) -> None:  # noqa: ANN001
    """The README's recipe, run for real: an Optuna study to CSV, then a tpe group from it."""
    import importlib.util
    import math

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", math.exp(-9), math.exp(-1), log=True)
        units = trial.suggest_categorical("units", [32, 64, 128])
        return (math.log10(lr) + 2.5) ** 2 + units / 1000

    study.optimize(objective, n_trials=12)
    study.trials_dataframe().to_csv(tmp_path / "study.csv")

    spec = importlib.util.spec_from_file_location("recipe", "docs/import_from_optuna.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    group = recipe.main(str(tmp_path / "study.csv"), pg_server.url)
    assert group["counts"]["succeeded"] == 12
    assert group["best_trial"]["objective"] == study.best_value
