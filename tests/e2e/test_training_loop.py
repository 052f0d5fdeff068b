"""A whole search as a user runs it: `hpo serve` in a subprocess, a training loop over httpx."""

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer

POLYAXONFILE = """\
version: 1
kind: group
objective:
  name: loss
  optimization: minimize
hptuning:
  concurrency: 2
  seed: 42
  random_search:
    n_experiments: 12
  matrix:
    lr:
      loguniform: -7:-1
    momentum:
      values: [0.0, 0.5, 0.9]
run:
  cmd: python train.py --lr={{ lr }} --momentum={{ momentum }}
"""


@pytest.fixture(scope="module")
def server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("e2e") / "server.log"
    live = LiveServer(postgres_url, workers=1, log_path=log)
    yield live
    live.stop()


def train(lr: float, momentum: float, epochs: int = 5) -> Iterator[float]:
    """A stand-in for training: a loss curve that is lowest near lr = 0.01, momentum 0.9."""
    for epoch in range(1, epochs + 1):
        yield (math.log10(lr) + 2) ** 2 + (0.9 - momentum) + 1 / epoch


def test_search_from_creation_to_best_trial(server: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        created = http.post(
            "/api/v1/groups",
            content=POLYAXONFILE,
            headers={"Content-Type": "application/yaml"},
        )
        assert created.status_code == 201, created.text
        group = created.json()
        assert group["planned_trials"] == 12

        finished = 0
        losses = {}
        while True:
            answer = http.post(
                f"/api/v1/groups/{group['id']}/suggestions",
                json={"count": 1, "worker_id": "e2e", "wait_seconds": 5},
            ).json()
            if answer["group_status"] in ("done", "stopped", "failed"):
                break
            if not answer["trials"]:
                continue
            (trial,) = answer["trials"]
            loss = math.inf
            for step, loss in enumerate(train(**trial["params"])):
                verdict = http.post(
                    f"/api/v1/trials/{trial['id']}/metrics",
                    json={"values": {"loss": loss}, "step": step},
                ).json()
                assert verdict["should_stop"] is False
            done = http.post(
                f"/api/v1/trials/{trial['id']}/complete",
                json={"status": "succeeded", "values": {"loss": loss}},
            )
            assert done.status_code == 200, done.text
            losses[trial["id"]] = loss
            finished += 1

        view = http.get(f"/api/v1/groups/{group['id']}").json()
        assert finished == 12
        assert view["status"] == "done"
        assert view["counts"]["succeeded"] == 12
        best_id = min(losses, key=losses.__getitem__)
        assert view["best_trial"]["id"] == best_id
        assert view["best_trial"]["objective"] == losses[best_id]
        export = http.get(f"/api/v1/groups/{group['id']}/export").text
        assert len(export.strip().splitlines()) == 13
