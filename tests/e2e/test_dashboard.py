"""The web dashboard in headless Chromium, against two `hpo serve` processes on PostgreSQL.

Debian's `chromium` is driven by Playwright for Python (`.ci/run` installs it). Outside
CI a machine without either is skipped; in CI (CI=true) that is a failure. Each page is
saved as a PNG under tests/e2e/screenshots/ for a reviewer to look at.
"""

import json
import math
import os
import random
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

SHOTS = Path(__file__).resolve().parent / "screenshots"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def _browser_or_skip() -> None:
    missing = []
    if sync_playwright is None:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append("Chromium (apt-get install chromium)")
    if missing:
        message = "dashboard tests need " + " and ".join(missing)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    _browser_or_skip()
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: "Browser", pg_server: LiveServer) -> Iterator["Page"]:
    """A fresh browser tab; at the end: no script error, nothing the Content-Security-Policy
    refused (no inline script or style), and no request anywhere but the server."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    elsewhere: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((pg_server.url, "data:", "blob:"))
            else elsewhere.append(request.url)
        ),
    )
    yield page
    context.close()
    assert not errors, f"script errors: {errors}"
    assert not elsewhere, f"the dashboard fetched from elsewhere: {elsewhere}"


def shot(page: "Page", name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def group_id_of(page: "Page") -> int:
    page.wait_for_url(re.compile(r".*#/groups/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def wait_points(page: "Page", plot: str, at_least: int) -> None:
    page.wait_for_function(
        "([plot, n]) => Number(document.querySelector("
        "`[data-plot=${plot}] svg.plot-svg`)?.dataset.points) >= n",
        arg=[plot, at_least],
    )


def count_of(page: "Page", status: str) -> int:
    return int(page.locator(f".count[data-status={status}] .n").inner_text().replace(",", ""))


def loss(params: dict[str, Any]) -> float:
    return abs(math.log(params["lr"]) + 5) / 5 + params["dropout"]


# ---------------------------------------------------------------- create, with errors

BAD_SPEC = """\
name: bad spec
objective: {name: loss, optimization: minimize}
hptuning:
  concurrency: 2
  matrix:
    lr:
      uniform: 'a:b'
    units:
      values: 3
"""


def test_create_page_shows_each_error_next_to_its_line(page: "Page", pg_server: LiveServer):
    with api(pg_server) as http:
        before = len(http.get("/api/v1/groups", params={"limit": 1000}).json()["items"])
    page.goto(f"{pg_server.url}/#/create")
    editor = page.get_by_label("Specification (YAML or JSON)")
    editor.fill(BAD_SPEC)
    page.get_by_role("button", name="Create group").click()

    lr = page.locator('.spec-error[data-path="hptuning.matrix.lr.uniform"]')
    expect(lr).to_contain_text("Line 7")
    expect(lr).to_contain_text("must be a number")
    expect(page.locator('.spec-error[data-path="hptuning.matrix.units.values"]')).to_contain_text(
        "Line 9"
    )
    # Next to the line itself: the gutter marks it and the message sits at its end.
    expect(page.locator(".gutter .ln.bad")).to_have_text(["! 7", "! 9"])
    expect(page.locator('.bl.bad[data-line="7"] .inline-error')).to_contain_text(
        "hptuning.matrix.lr.uniform"
    )
    expect(editor).to_have_attribute("aria-invalid", "true")
    shot(page, "create-errors")

    # The line button puts the cursor on the faulty line.
    lr.get_by_role("button", name="Line 7").click()
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    selected = page.evaluate(
        "(() => { const t = document.activeElement;"
        " return t.value.slice(t.selectionStart, t.selectionEnd); })()"
    )
    assert selected == "      uniform: 'a:b'"

    # A YAML syntax error: the message's line number places it.
    editor.fill("hptuning:\n  matrix: [\n  lr")
    expect(page.locator(".spec-errors")).to_be_hidden()  # edited: old errors are gone
    page.get_by_role("button", name="Create group").click()
    syntax = page.locator(".spec-error").first
    expect(syntax).to_contain_text("Invalid YAML")
    expect(syntax).to_have_attribute("data-line", "3")
    with api(pg_server) as http:
        after = len(http.get("/api/v1/groups", params={"limit": 1000}).json()["items"])
    assert after == before, "an invalid document created a group"


# ---------------------------------------------------------------- the whole story

GOOD_SPEC = """\
name: e2e dashboard
objective: {name: loss, optimization: minimize}
hptuning:
  concurrency: 3
  seed: 3
  random_search:
    n_experiments: 40
  matrix:
    lr:
      loguniform: '-9:-2'
    dropout:
      uniform: '0:0.5'
    optimizer:
      values: [adam, sgd, rmsprop]
"""


class Driver(threading.Thread):
    """A worker in the background: trains `n` trials with a few metric steps each,
    stops every fifth, then takes `hold` more and leaves them running."""

    def __init__(self, url: str, group_id: int, n: int, hold: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.url, self.group_id, self.n, self.hold, self.pause = url, group_id, n, hold, pause
        self.held: list[dict[str, Any]] = []
        self.stopped: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=30) as http:
                done = 0
                while done < self.n:
                    answer = http.post(
                        f"/api/v1/groups/{self.group_id}/suggestions",
                        json={"count": 1, "worker_id": "e2e-worker", "wait_seconds": 2},
                    ).json()
                    for trial in answer["trials"]:
                        self.train(http, trial, stop=done % 5 == 4)
                        done += 1
                        time.sleep(self.pause)
                answer = http.post(
                    f"/api/v1/groups/{self.group_id}/suggestions",
                    json={"count": self.hold, "worker_id": "e2e-worker"},
                ).json()
                for trial in answer["trials"]:
                    http.post(
                        f"/api/v1/trials/{trial['id']}/metrics", json={"values": {"loss": 2.0}}
                    )
                    self.held.append(trial)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def train(self, http: httpx.Client, trial: dict[str, Any], stop: bool) -> None:
        final = loss(trial["params"])
        steps = 2 if stop else 4
        for step in range(1, steps + 1):
            value = final + 1.0 / step
            http.post(
                f"/api/v1/trials/{trial['id']}/metrics",
                json={"values": {"loss": value, "accuracy": 1 - value / 4}, "step": step},
            )
        if stop:
            self.stopped.append(trial["id"])
        http.post(
            f"/api/v1/trials/{trial['id']}/complete",
            json={"status": "stopped" if stop else "succeeded", "values": {"loss": value}},
        )


def test_create_watch_plots_trial_stop_and_list(page: "Page", pg_server: LiveServer):
    page.goto(f"{pg_server.url}/#/create")
    page.get_by_label("Specification (YAML or JSON)").fill(GOOD_SPEC)
    page.get_by_role("button", name="Create group").click()
    gid = group_id_of(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("e2e dashboard")
    expect(page.locator(".count[data-status=succeeded] .n")).to_have_text("0")
    page.evaluate("window.__sameDocument = true")

    # Slow enough that the 2 s refresh sees the counts between their first and last value.
    driver = Driver(pg_server.url, gid, n=15, hold=2, pause=0.6)
    driver.start()
    # The counts move while the worker trains, with no reload of the page.
    page.wait_for_function(
        "() => Number(document.querySelector('.count[data-status=succeeded] .n').textContent) >= 1"
    )
    first_seen = count_of(page, "succeeded")
    # A keyboard user on a trial link keeps their place while the table refreshes.
    page.locator("#trials tbody a").last.focus()
    focused = page.evaluate("document.activeElement.dataset.focusKey")
    page.wait_for_function(
        "(n) => Number(document.querySelector('.count[data-status=succeeded] .n').textContent) > n",
        arg=first_seen,
        timeout=20_000,
    )
    assert page.evaluate("document.activeElement.dataset.focusKey") == focused
    driver.join(30)
    assert not driver.is_alive() and driver.error is None, driver.error
    page.wait_for_function(
        "() => Number(document.querySelector('.count[data-status=succeeded] .n').textContent)"
        " == 12 && Number(document.querySelector('.count[data-status=running] .n')"
        ".textContent) == 2"
    )
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator(".stamp")).to_contain_text("Last updated")
    assert count_of(page, "stopped") == 3

    # The plots, with data in them.
    wait_points(page, "objective", 15)
    wait_points(page, "parallel", 15)
    wait_points(page, "curves", 15 * 2)
    for plot in ("objective", "parallel", "curves"):
        paths = page.locator(f"[data-plot={plot}] svg path")
        assert paths.count() > 0
        assert any(len(paths.nth(i).get_attribute("d") or "") > 10 for i in range(paths.count()))
    expect(page.locator("[data-plot=objective] path.line")).to_have_count(1)  # best so far
    expect(page.locator("[data-plot=curves] path.stop-marks")).to_have_count(1)
    expect(page.locator("[data-plot=parallel] .pc-best")).to_have_count(1)
    expect(page.locator("#trials tbody tr")).to_have_count(17)
    shot(page, "group-running")

    # Export as CSV: a download of every trial.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"group-{gid}.csv"
    rows = Path(download.path()).read_text().strip().splitlines()
    assert rows[0].startswith("id,config_index") and len(rows) == 1 + 17

    # A trial: its curves, why it was suggested; a stopped one says why it stopped.
    page.locator(".best-line a").click()
    expect(page.get_by_role("heading", name=re.compile(r"Trial #\d+"))).to_be_visible()
    expect(page.locator("[data-metric=loss] svg.plot-svg")).to_have_attribute("data-points", "4")
    expect(page.locator("[data-metric=accuracy] svg.plot-svg")).to_have_attribute(
        "data-points", "4"
    )
    expect(page.get_by_role("region", name="Why it was suggested")).to_contain_text("Random draw")
    expect(page.get_by_role("region", name="Params", exact=True)).to_contain_text("optimizer")
    shot(page, "trial")
    page.goto(f"{pg_server.url}/#/trials/{driver.stopped[0]}")
    expect(page.get_by_role("region", name="Why it stopped")).to_contain_text("stopped")
    expect(page.locator("[data-metric=loss] path.stop-marks")).to_have_count(1)
    shot(page, "trial-stopped")
    page.goto(f"{pg_server.url}/#/trials/{driver.held[0]['id']}")
    expect(page.get_by_role("region", name="Status", exact=True)).to_contain_text("expires in")

    # Stop the group with the button; the running trials hear it at their next report.
    page.goto(f"{pg_server.url}/#/groups/{gid}")
    page.get_by_role("button", name="Stop group").click()
    dialog = page.get_by_role("dialog", name="Stop this group?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Stop the group").click()
    expect(page.locator(".head-status .badge")).to_have_text("stopped")
    expect(page.get_by_role("button", name="Stop group")).to_be_hidden()
    with api(pg_server) as http:
        for trial in driver.held:
            answer = http.post(
                f"/api/v1/trials/{trial['id']}/metrics", json={"values": {"loss": 1.9}}
            )
            assert answer.json()["should_stop"] is True
            http.post(
                f"/api/v1/trials/{trial['id']}/complete",
                json={"status": "stopped", "values": {"loss": 1.9}},
            )
    expect(page.locator(".count[data-status=running] .n")).to_have_text("0")
    expect(page.locator(".stamp")).to_contain_text("not refreshing")
    shot(page, "group-stopped")

    # The groups page lists it, stopped; the status filter keeps it.
    page.get_by_role("link", name="Groups", exact=True).first.click()
    row = page.locator(f"tr[data-group='{gid}']")
    expect(row).to_contain_text("stopped")
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "17")
    page.get_by_label("Status").select_option("stopped")
    expect(page).to_have_url(re.compile(r"#/\?status=stopped$"))
    expect(page.locator(f"tr[data-group='{gid}']")).to_be_visible()
    expect(page.locator("tbody .badge")).not_to_contain_text(["running"])
    page.get_by_label("Status").select_option("")
    expect(page.locator(f"tr[data-group='{gid}']")).to_be_visible()
    shot(page, "groups")


# ---------------------------------------------------------------- Hyperband, model-based


def drive_to_the_end(http: httpx.Client, group_id: int, metric: str, value) -> int:
    """Trains every trial of a group at once, in this thread; returns how many."""
    n = 0
    while True:
        answer = http.post(
            f"/api/v1/groups/{group_id}/suggestions", json={"count": 20, "wait_seconds": 1}
        ).json()
        if answer["group_status"] not in ("created", "running"):
            return n
        for trial in answer["trials"]:
            final = value(trial)
            for step in (1, 2):
                http.post(
                    f"/api/v1/trials/{trial['id']}/metrics",
                    json={"values": {metric: final + 0.5 / step}, "step": step},
                )
            http.post(
                f"/api/v1/trials/{trial['id']}/complete",
                json={"status": "succeeded", "values": {metric: final}},
            )
            n += 1


def test_hyperband_group_shows_brackets_rungs_and_promotions(page: "Page", pg_server: LiveServer):
    spec = {
        "name": "e2e hyperband",
        "hptuning": {
            "concurrency": 30,
            "seed": 5,
            "hyperband": {
                "max_iter": 9,
                "eta": 3,
                "resource": {"name": "epochs", "type": "int"},
                "metric": {"name": "val_loss", "optimization": "minimize"},
                "resume": True,
            },
            "matrix": {"lr": {"loguniform": "-9:-2"}, "dropout": {"uniform": "0:0.5"}},
        },
    }
    with api(pg_server) as http:
        group = http.post("/api/v1/groups", json=spec).json()
        drive_to_the_end(
            http, group["id"], "val_loss", lambda t: loss(t["params"]) + 3 / t["resource"]
        )
        rungs = http.get(f"/api/v1/groups/{group['id']}").json()["rungs"]
    page.goto(f"{pg_server.url}/#/groups/{group['id']}")
    card = page.locator("[data-plot=rungs]")
    expect(card.get_by_role("heading")).to_have_text("Hyperband brackets and rungs")
    expect(card.locator(".rung-panel")).to_have_count(len({r["bracket"] for r in rungs}))
    expect(card.locator("tbody tr")).to_have_count(len(rungs))
    assert card.locator("rect.part-promoted").count() >= 1
    # The rung a trial was promoted from and to: one link per promotion.
    promotions = sum(r["promoted"] for r in rungs)
    assert promotions > 0
    links = page.locator("[data-plot=promotions] path.links").get_attribute("d") or ""
    assert links.count("M") == promotions
    wait_points(page, "objective", sum(r["counts"]["succeeded"] for r in rungs))
    shot(page, "group-hyperband")


def test_model_based_group_shows_suggestions_by_phase(page: "Page", pg_server: LiveServer):
    spec = {
        "name": "e2e tpe",
        "hptuning": {
            "concurrency": 2,
            "seed": 1,
            "tpe": {
                "n_experiments": 16,
                "n_initial_trials": 6,
                "metric": {"name": "loss", "optimization": "minimize"},
            },
            "matrix": {"lr": {"loguniform": "-9:-2"}, "dropout": {"uniform": "0:0.5"}},
        },
    }
    with api(pg_server) as http:
        group = http.post("/api/v1/groups", json=spec).json()
        drive_to_the_end(http, group["id"], "loss", lambda t: loss(t["params"]))
    page.goto(f"{pg_server.url}/#/groups/{group['id']}")
    card = page.locator("[data-plot=order]")
    expect(card.get_by_role("heading")).to_have_text("Order of suggestions")
    wait_points(page, "order", 16)
    expect(card.locator(".legend")).to_contain_text("initial (6)")
    expect(card.locator(".legend")).to_contain_text("model (10)")
    shot(page, "group-model-based")
    page.locator("#trials tbody tr").first.get_by_role("link").click()
    expect(page.get_by_role("region", name="Why it was suggested")).to_contain_text("Model phase")
    shot(page, "trial-model-based")


# ---------------------------------------------------------------- phone, keyboard, sign-in


def test_phone_width_does_not_scroll_sideways(browser: "Browser", pg_server: LiveServer):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto(f"{pg_server.url}/#/")
        expect(page.locator("tr[data-group]").first).to_be_visible()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
        shot(page, "groups-phone")
        page.locator("tr[data-group] a").first.click()
        wait_points(page, "objective", 1)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
        shot(page, "group-phone")
        page.goto(f"{pg_server.url}/#/create")
        expect(page.get_by_label("Specification (YAML or JSON)")).to_be_visible()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    finally:
        context.close()


UNNAMED_CONTROLS = """() => [
  ...document.querySelectorAll('a[href], button, input, select, textarea')]
  .filter((el) => el.offsetParent !== null || el.type === 'file')
  .filter((el) => {
    const name = el.getAttribute('aria-label') || (el.labels && [...el.labels]
      .map((l) => l.textContent).join(' ')) || el.textContent || el.title || '';
    return !name.trim();
  }).map((el) => el.outerHTML.slice(0, 80))"""


def test_keyboard_use_and_accessible_names(page: "Page", pg_server: LiveServer):
    page.goto(f"{pg_server.url}/#/")
    expect(page.locator("tr[data-group]").first).to_be_visible()
    assert page.evaluate(UNNAMED_CONTROLS) == []
    # Tab to "New group" in the header and press Enter: the create page, focus on its title.
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "New group":
            break
    assert page.evaluate("document.activeElement.closest('nav') !== null")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#/create$"))
    # The view renders after the URL changes: wait for the focus to land, do not race it.
    expect(page.locator("main h1")).to_be_focused()
    assert page.evaluate(UNNAMED_CONTROLS) == []
    # Pick an example and create the group from the keyboard alone.
    page.get_by_label("Start from an example").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # "Use this example": grid search
    editor = page.get_by_label("Specification (YAML or JSON)")
    expect(editor).to_be_focused()
    expect(editor).to_have_value(re.compile("grid example"))
    page.keyboard.press("Control+Enter")
    gid = group_id_of(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("grid example")
    assert page.evaluate(UNNAMED_CONTROLS) == []
    # The stop dialog opens on Enter, Escape closes it, and nothing was stopped.
    page.get_by_role("button", name="Stop group").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    with api(pg_server) as http:
        assert http.get(f"/api/v1/groups/{gid}").json()["status"] == "created"


def test_sign_in_when_the_api_asks_for_a_key(
    browser: "Browser", postgres_url: str, tmp_path_factory: pytest.TempPathFactory
):
    # A server of its own that needs keys, with a project key that sees one group.
    admin = {"Authorization": "Bearer dashboard-admin-key-0123456789"}
    server = LiveServer(
        postgres_url,
        log_path=tmp_path_factory.mktemp("auth-server") / "server.log",
        env={"HPO_ADMIN_KEY": admin["Authorization"].split()[1]},
    )
    try:
        api = httpx.Client(base_url=server.url, timeout=30)
        api.post("/api/v1/projects", json={"name": "dash"}, headers=admin)
        key = api.post("/api/v1/projects/dash/keys", json={"role": "read"}, headers=admin).json()[
            "key"
        ]
        mine = api.post(
            "/api/v1/groups",
            params={"project": "dash"},
            json={"name": "only-mine", "hptuning": {"matrix": {"x": {"values": [1, 2]}}}},
            headers=admin,
        ).json()
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/#/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.locator("tr[data-group]")).to_have_count(0)
        shot(page, "sign-in")
        page.get_by_label("API key").fill("hpo_0000000000000000_wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("This API key was not accepted")).to_be_visible()
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        # The project's own group only: the other groups of this database stay hidden.
        expect(page.locator("tr[data-group]")).to_have_count(1)
        expect(page.locator(f'tr[data-group="{mine["id"]}"]')).to_be_visible()
        # Signing out forgets the key, and the form is back at the next request.
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page.evaluate("localStorage.getItem('hpo.apiKey')") is None
        context.close()
        assert not errors, f"script errors: {errors}"
    finally:
        server.stop()


# ---------------------------------------------------------------- scale


def test_ten_thousand_trials_load_and_draw(page: "Page", pg_server: LiveServer):
    """A group with 10,000 finished trials (imported, so that it is quick to make)."""
    rng = random.Random(7)
    trials = []
    for _ in range(10_000):
        params = {
            "lr": float(f"{math.exp(rng.uniform(-8.99, -2.01)):.3g}"),
            "dropout": round(rng.uniform(0, 0.5), 3),
            "optimizer": rng.choice(["adam", "sgd", "rmsprop"]),
        }
        trials.append(
            {"params": params, "values": {"loss": round(loss(params) + rng.random() / 5, 4)}}
        )
    body = {
        "name": "e2e 10,000 trials",
        "objective": {"name": "loss", "optimization": "minimize"},
        "hptuning": {
            "random_search": {"n_experiments": 10_100},
            "matrix": {
                "lr": {"loguniform": "-9:-2"},
                "dropout": {"uniform": "0:0.5"},
                "optimizer": {"values": ["adam", "sgd", "rmsprop"]},
            },
        },
        "trials": trials,
    }
    with api(pg_server) as http:
        response = http.post(
            "/api/v1/groups",
            content=json.dumps(body, separators=(",", ":")),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        assert response.status_code == 201, response.text[:500]
        gid = response.json()["id"]
    started = time.monotonic()
    page.goto(f"{pg_server.url}/#/groups/{gid}")
    wait_points(page, "parallel", 10_000)
    wait_points(page, "objective", 10_000)
    seconds = time.monotonic() - started
    measures = dict(
        page.evaluate(
            "performance.getEntriesByType('measure').filter((m) => m.name.startsWith('hpo:'))"
            ".map((m) => [m.name, Math.round(m.duration)])"
        )
    )
    nodes = page.evaluate("document.getElementsByTagName('*').length")
    # For the reviewer, next to the screenshots.
    (SHOTS / "timings.txt").write_text(
        f"10,000 trials: on screen {seconds:.1f} s after navigation; fetch "
        f"{measures['hpo:fetch:first']} ms, draw {measures['hpo:render:first']} ms; "
        f"{nodes} DOM elements\n"
    )
    assert nodes < 3000, "plots must not make a DOM node per point"
    assert measures["hpo:render:first"] < 3000
    assert seconds < 30
    shot(page, "group-10000-trials")


# ---------------------------------------------------------------- error path -> line

LINE_CASES = [
    # (document, error path, expected 1-based line)
    ("hptuning:\n  matrix:\n    lr: {uniform: 'a:b'}\n", "hptuning.matrix.lr.uniform", 3),
    ("matrix:\n  lr:\n    uniform: 'a:b'\n", "hptuning.matrix.lr.uniform", 3),  # bare section
    ("version: 1\nkind: group\nhptuning:\n  matrix:\n    x: 1\n", "hptuning.matrix.x", 5),
    ("hptuning:\n  tpe:\n    metric: loss\n", "hptuning.tpe.n_experiments", 2),  # missing key
    (
        "hptuning:\n  early_stopping:\n    - metric: a\n      value: 1\n"
        "    - metric: b  # second\n      value: x\n",
        "hptuning.early_stopping.1.value",
        6,
    ),
    (
        "hptuning:\n  early_stopping:\n  - metric: a\n  - metric: b\n",
        "hptuning.early_stopping.1",
        4,
    ),
    (
        '{\n  "hptuning": {\n    "matrix": {\n      "lr": {"uniform": "a:b"}\n    }\n  }\n}\n',
        "hptuning.matrix.lr.uniform",
        4,
    ),
    ("# lr: here\nhptuning:\n  'matrix':\n    \"lr\": 3\n", "hptuning.matrix.lr", 4),
    ("hptuning:\n  matrix: {}\n", "name", None),
]


def test_error_paths_are_mapped_to_their_lines(page: "Page", pg_server: LiveServer):
    page.goto(f"{pg_server.url}/#/create")
    found = page.evaluate(
        """async (cases) => {
          const base = document.querySelector('script[type=module]').src.replace(/app\\.js$/, '');
          const { lineOfError } = await import(base + 'yamlpath.js');
          return cases.map(([text, path]) => lineOfError(text, { path, message: '' }));
        }""",
        [[text, path] for text, path, _ in LINE_CASES],
    )
    assert found == [line for _, _, line in LINE_CASES]
