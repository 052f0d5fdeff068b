"""The generated SDK end to end: generate it from openapi/openapi.json, import it, run a search.

The client is generated into a temporary folder by openapi/generate_sdk.py and
imported from there (its folder goes on sys.path) rather than pip-installed:
building the generated setup.py project without network needs setuptools >= 70.1
or `wheel` in the environment (a stock Python 3.11 venv has neither), and an
install into the running venv would leave the package behind and race with other
test sessions sharing the venv. The code imported is the same either way, and its
runtime needs (httpx, attrs) are already installed.
"""

import importlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytest.importorskip(
    "openapi_python_client",
    reason="openapi-python-client is not installed (it comes with the `test` extra)",
)

REPO = Path(__file__).resolve().parents[2]
GENERATE = REPO / "openapi" / "generate_sdk.py"
PACKAGE = "hpo_engine_client"
TRIALS = 8
DEADLINE_SECONDS = 45


def _imported_sdk_modules() -> list[str]:
    return [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]


@pytest.fixture(scope="session")
def sdk_generation(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Start openapi/generate_sdk.py at once, so that it runs while the server starts."""
    out = tmp_path_factory.mktemp("sdk") / "hpo-engine-client"
    process = subprocess.Popen(
        [sys.executable, str(GENERATE), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process, out
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture
def sdk(
    sdk_generation: tuple[subprocess.Popen[str], Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The generated client, importable as `hpo_engine_client` from its temporary folder."""
    process, out = sdk_generation
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, f"generate_sdk.py failed:\n{output}"
    assert (out / PACKAGE / "client.py").is_file(), output
    for name in _imported_sdk_modules():  # an SDK imported from elsewhere must not answer
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(out))
    yield out
    for name in _imported_sdk_modules():
        del sys.modules[name]


def loss_curve(lr: float, momentum: float, epochs: int = 3) -> list[float]:
    """A stand-in for training: lowest near lr = 0.01 and momentum = 0.9, falling per epoch."""
    return [(math.log10(lr) + 2) ** 2 + (0.9 - momentum) + 1 / e for e in range(1, epochs + 1)]


def test_generated_client_runs_a_whole_search(
    sdk_generation: object, pg_server: LiveServer, sdk: Path
) -> None:
    # Fixture order matters for speed only: the generator (started by sdk_generation)
    # runs while pg_server starts; `sdk` then waits for it.
    client_module = importlib.import_module(PACKAGE)
    assert Path(client_module.__file__).is_relative_to(sdk), client_module.__file__

    from hpo_engine_client import Client
    from hpo_engine_client.api.groups import create_group, export_group, get_group
    from hpo_engine_client.api.trials import complete, report_metrics, suggest
    from hpo_engine_client.models import (
        CompleteRequest,
        CompleteRequestStatus,
        CompleteRequestValues,
        ExportGroupFormat,
        GroupRequest,
        GroupView,
        MetricsReport,
        MetricsReportValues,
        Problem,
        StopAnswer,
        SuggestionRequest,
        SuggestionResponse,
        TrialView,
    )

    client = Client(base_url=pg_server.url, raise_on_unexpected_status=True)

    request = {
        "name": "sdk-e2e",
        "objective": {"name": "loss", "optimization": "minimize"},
        "hptuning": {
            "concurrency": 2,
            "seed": 11,
            "random_search": {"n_experiments": TRIALS},
            "matrix": {"lr": {"loguniform": "-7:-1"}, "momentum": {"values": [0.0, 0.5, 0.9]}},
        },
    }
    body = GroupRequest.from_dict(request)
    assert body.to_dict() == request  # the generated models keep the nested spec as it is
    group = create_group.sync(client=client, body=body)
    assert isinstance(group, GroupView), group
    assert group.algorithm == "random"
    assert group.planned_trials == TRIALS

    final_loss: dict[int, float] = {}
    params: dict[int, dict] = {}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        assert time.monotonic() < deadline, f"search not done after {DEADLINE_SECONDS} s"
        answer = suggest.sync(
            group.id,
            client=client,
            body=SuggestionRequest(count=1, worker_id="sdk", wait_seconds=5),
        )
        assert isinstance(answer, SuggestionResponse), answer
        if answer.group_status in ("done", "stopped", "failed"):
            break
        for trial in answer.trials:
            params[trial.id] = trial.params.to_dict()
            curve = loss_curve(trial.params["lr"], trial.params["momentum"])
            for step, loss in enumerate(curve):
                verdict = report_metrics.sync(
                    trial.id,
                    client=client,
                    body=MetricsReport(
                        values=MetricsReportValues.from_dict({"loss": loss}), step=step
                    ),
                )
                assert isinstance(verdict, StopAnswer), verdict
                assert verdict.should_stop is False
            finished = complete.sync(
                trial.id,
                client=client,
                body=CompleteRequest(
                    status=CompleteRequestStatus.SUCCEEDED,
                    values=CompleteRequestValues.from_dict({"loss": curve[-1]}),
                ),
            )
            assert isinstance(finished, TrialView), finished
            assert finished.status == "succeeded"
            final_loss[trial.id] = curve[-1]

    assert answer.group_status == "done"
    assert len(final_loss) == TRIALS

    view = get_group.sync(group.id, client=client)
    assert isinstance(view, GroupView), view
    assert view.status == "done"
    assert view.counts.succeeded == TRIALS
    best_id = min(final_loss, key=final_loss.__getitem__)
    assert isinstance(view.best_trial, TrialView)
    assert view.best_trial.id == best_id
    assert view.best_trial.objective == pytest.approx(final_loss[best_id])
    assert view.best_trial.params.to_dict() == params[best_id]

    # Export: the spec lists text/csv first, so the client gives back the body as text,
    # CSV by default and JSON on request.
    csv_text = export_group.sync(group.id, client=client)
    assert isinstance(csv_text, str) and len(csv_text.strip().splitlines()) == TRIALS + 1
    rows = json.loads(export_group.sync(group.id, client=client, format_=ExportGroupFormat.JSON))
    assert isinstance(rows, list) and len(rows) == TRIALS, rows

    # Errors come back as parsed problems (the server sends application/problem+json).
    missing = get_group.sync(10**9, client=client)
    assert isinstance(missing, Problem), missing
    assert missing.status == 404
