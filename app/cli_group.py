"""`hpo group ...` and `hpo agent`: the user's side of a running hpo-engine service.

Every command talks HTTP to the service named by `--url` (or HPO_URL, default
http://127.0.0.1:8000), with `--token` (or HPO_TOKEN) sent as a Bearer token.
Tables are for people; `--json` prints what the API answered, for programs.
Exit codes: 0 fine, 1 an error from (or no answer at) the service, 2 invalid
input (a 422 with the path of each faulty field, or bad options).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.agent import (
    DEFAULT_URL,
    Agent,
    ApiError,
    ServiceClient,
    ServiceUnreachable,
    format_params,
    template_fields,
)

group_cli = typer.Typer(
    help="Create, list, inspect, stop and export groups on an hpo-engine service.",
    no_args_is_help=True,
)

UrlOption = Annotated[str, typer.Option("--url", envvar="HPO_URL", help="The service's address.")]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="HPO_TOKEN", help="Sent as a Bearer token.", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        envvar="HPO_PROJECT",
        help="The project (with the admin key; a project's key works in its own).",
        show_default=False,
    ),
]
ParallelOption = Annotated[
    int, typer.Option("--parallel", "-n", min=1, help="Commands to run at once.")
]
HeartbeatOption = Annotated[
    float | None,
    typer.Option(
        min=0.1,
        help="Seconds between heartbeats of a running trial (default: a third of the "
        "group's lease, at most 30).",
        show_default=False,
    ),
]
GraceOption = Annotated[
    float,
    typer.Option(min=0, help="Seconds between SIGTERM and SIGKILL when a command must stop."),
]
MaxTrialsOption = Annotated[
    int | None,
    typer.Option(min=1, help="Run at most this many trials, then exit.", show_default=False),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Do not echo the commands' output.")
]
CommandArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="The training command, after `--`; `{param}` placeholders are filled in.",
        show_default=False,
    ),
]

_GROUP_STATUSES = ("created", "running", "done", "stopped", "failed")
_STATUS_STYLE = {
    "created": "cyan",
    "running": "blue",
    "done": "green",
    "succeeded": "green",
    "stopped": "yellow",
    "failed": "red",
    "expired": "magenta",
    "pending": "cyan",
}


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal, rich would squeeze tables into 80 columns; give them room.
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=160 if wide else None, highlight=False)


out = _console()
err = _console(stderr=True)


@contextmanager
def _service(url: str, token: str | None, *, retries: int = 0) -> Iterator[ServiceClient]:
    """A client whose errors end the command with a message and the right exit code."""
    client = ServiceClient(url or DEFAULT_URL, token, retries=retries)
    try:
        yield client
    except ServiceUnreachable as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except ApiError as exc:
        # A 422's detail repeats its errors; they read better one per line.
        headline = "invalid input" if exc.errors else exc.detail
        err.print(f"error: {headline} (HTTP {exc.status})", markup=False, soft_wrap=True)
        for problem in exc.errors:
            where = problem.get("path") or "(document)"
            err.print(f"  {where}: {problem.get('message')}", markup=False, soft_wrap=True)
        raise typer.Exit(2 if exc.status == 422 else 1) from None
    finally:
        client.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _styled(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _concurrency(n: int) -> str:
    return "sequential runs" if n == 1 else f"{n} concurrent runs"


def _early_stopping(group: dict[str, Any]) -> str:
    return "activated" if group.get("hptuning", {}).get("early_stopping") else "deactivated"


def _objective(group: dict[str, Any]) -> str:
    objective = group.get("objective")
    if not objective:
        return "-"
    return f"{objective['name']} ({objective['optimization']})"


# --------------------------------------------------------------------------- create


def _parse_objective(text: str) -> dict[str, str]:
    name, _, direction = text.partition(":")
    direction = direction.strip().lower() or "maximize"
    if not name.strip() or direction not in ("minimize", "maximize"):
        raise typer.BadParameter(
            "give NAME or NAME:minimize or NAME:maximize", param_hint="--objective"
        )
    return {"name": name.strip(), "optimization": direction}


def _request_body(file: Path, name: str | None, objective: str | None) -> tuple[bytes, str]:
    """The body and Content-Type that create the group the file describes."""
    is_json = file.suffix.lower() == ".json"
    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    if name is None and objective is None:
        return data, "application/json" if is_json else "application/yaml"
    # The wrapper keys sit at the top of every accepted shape (polyaxonfile, bare
    # hptuning section, wrapper), so adding them there is enough.
    from app.schemas.yaml12 import load_yaml

    try:
        text = data.decode("utf-8-sig")
        document = json.loads(text) if is_json else load_yaml(text)
    except Exception as exc:  # bad UTF-8, JSON or YAML
        err.print(
            f"error: {file} is not readable as {'JSON' if is_json else 'YAML'}: {exc}",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    if not isinstance(document, dict):
        return data, "application/json" if is_json else "application/yaml"  # the service says why
    if name is not None:
        document["name"] = name
    if objective is not None:
        document["objective"] = _parse_objective(objective)
    return json.dumps(document, default=str).encode(), "application/json"


def _print_definition(group: dict[str, Any]) -> None:
    """What `polyaxon check` showed of a group, plus what the service decided."""
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Search algorithm", group["algorithm"])
    table.add_row("Concurrency", _concurrency(group["concurrency"]))
    table.add_row("Early stopping", _early_stopping(group))
    if group.get("planned_trials") is not None:
        table.add_row("Experiments to create", str(group["planned_trials"]))
    table.add_row("Objective", _objective(group))
    if group.get("name"):
        table.add_row("Name", group["name"])
    out.print("Creating an experiment group with the following definition:")
    out.print(table)
    for warning in group.get("warnings") or []:
        out.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
    out.print(f"Experiment group {group['id']} was created")


@group_cli.command("create")
def create(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="A polyaxonfile, an hptuning section, or the JSON form ('-': stdin).",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="The group's name.", show_default=False)] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            help="NAME or NAME:minimize|maximize: the metric that ranks trials.", show_default=False
        ),
    ] = None,
    run: Annotated[
        bool, typer.Option("--run", help="Then run the command after `--` for it (hpo agent).")
    ] = False,
    command: CommandArgument = None,
    parallel: ParallelOption = 1,
    heartbeat: HeartbeatOption = None,
    grace: GraceOption = 10.0,
    quiet: QuietOption = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a group from a file, like `polyaxon run -f`; with --run, also train it.

    A 422 lists the path of every faulty field (hptuning.matrix.lr.uniform: ...)
    and exits with 2.
    """
    if command and not run:
        raise typer.BadParameter("a command only makes sense with --run", param_hint="COMMAND")
    if run and not command:
        raise typer.BadParameter("--run needs the command to run, after `--`", param_hint="--run")
    try:
        template_fields(command or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="COMMAND") from None
    if str(file) != "-" and not file.is_file():
        raise typer.BadParameter(f"no such file: {file}", param_hint="--file")
    body, content_type = _request_body(file, name, objective)
    with _service(url, token) as client:
        group = client.post(
            "/api/v1/groups",
            content=body,
            headers={"Content-Type": content_type},
            params={"project": project} if project else None,
        )
        if as_json:
            _print_json(group)
        else:
            _print_definition(group)
    if run:
        assert command is not None
        code = _run_agent(url, token, group["id"], command, parallel, heartbeat, grace, None, quiet)
        raise typer.Exit(code)


# --------------------------------------------------------------------------- list / show


@group_cli.command("list")
def list_groups(
    status: Annotated[
        str | None,
        typer.Option(
            help=f"Only groups of this status ({', '.join(_GROUP_STATUSES)}).", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many groups.")] = 50,
    project: ProjectOption = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List groups, newest first."""
    if status is not None and status not in _GROUP_STATUSES:
        raise typer.BadParameter(f"one of {', '.join(_GROUP_STATUSES)}", param_hint="--status")
    items: list[dict[str, Any]] = []
    with _service(url, token) as client:
        cursor: str | None = None
        while len(items) < limit:
            params: dict[str, Any] = {"limit": min(limit - len(items), 1000)}
            if status:
                params["status"] = status
            if project:
                params["project"] = project
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/groups", params=params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    if as_json:
        _print_json(items)
        return
    if not items:
        out.print("No groups." if status is None else f"No {status} groups.")
        return
    table = Table(header_style="bold")
    for column in (
        "ID",
        "Name",
        "Algorithm",
        "Status",
        "Concurrency",
        "Trials",
        "Objective",
        "Created",
    ):
        table.add_column(column, justify="right" if column in ("ID", "Concurrency") else "left")
    for g in items:
        planned = "?" if g.get("planned_trials") is None else g["planned_trials"]
        table.add_row(
            str(g["id"]),
            g.get("name") or "",
            g["algorithm"],
            _styled(g["status"]),
            str(g["concurrency"]),
            f"{g['proposed_trials']}/{planned}",
            _objective(g),
            _when(g.get("created_at")),
        )
    out.print(table)


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    return stamp.replace("T", " ")[:19]


def _all_trials(client: ServiceClient, group_id: int) -> list[dict[str, Any]]:
    trials: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/api/v1/groups/{group_id}/trials", params=params)
        trials += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return trials


def rank_trials(trials: list[dict[str, Any]], maximize: bool) -> list[dict[str, Any]]:
    """Best first: succeeded trials by the objective (as the group picks its best
    trial), then the other trials that have a value, then the rest, by id."""

    def key(t: dict[str, Any]) -> tuple[int, float, int]:
        value = t.get("objective")
        if value is None:
            return (2, 0.0, t["id"])
        return (0 if t["status"] == "succeeded" else 1, -value if maximize else value, t["id"])

    return sorted(trials, key=key)


@group_cli.command("show")
def show(
    group_id: Annotated[int, typer.Argument(help="The group's id.")],
    top: Annotated[int, typer.Option(min=0, help="Show the best N trials (0: all of them).")] = 20,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """A group's status, counts and best trial, and its trials ranked by the objective.

    With --json: the group as the API shows it, plus `trials`, ranked the same way.
    """
    with _service(url, token) as client:
        group = client.get(f"/api/v1/groups/{group_id}")
        trials = _all_trials(client, group_id)
    objective = group.get("objective") or {}
    ranked = rank_trials(trials, objective.get("optimization") == "maximize")
    shown = ranked[:top] if top else ranked
    if as_json:
        _print_json({**group, "trials": shown})
        return
    out.print(_summary_panel(group))
    if not trials:
        out.print("No trials yet.")
        return
    out.print(_trial_table(shown, objective.get("name")))
    if len(shown) < len(ranked):
        out.print(f"({len(ranked) - len(shown)} more trials; --top 0 shows them all)")


def _summary_panel(group: dict[str, Any]) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    status = _styled(group["status"])
    if group.get("status_reason"):
        status += Text(f" ({group['status_reason']})")
    grid.add_row("Status", status)
    grid.add_row("Search algorithm", group["algorithm"])
    grid.add_row("Concurrency", _concurrency(group["concurrency"]))
    grid.add_row("Early stopping", _early_stopping(group))
    grid.add_row("Objective", _objective(group))
    planned = "?" if group.get("planned_trials") is None else str(group["planned_trials"])
    grid.add_row("Trials", f"{group['proposed_trials']} proposed of {planned} planned")
    counts = group.get("counts") or {}
    grid.add_row("Counts", "  ".join(f"{k} {v}" for k, v in counts.items()))
    best = group.get("best_trial")
    if best:
        grid.add_row(
            "Best trial",
            f"{best['id']}: {_num(best.get('objective'))}  ({format_params(best['params'])})",
        )
    else:
        grid.add_row("Best trial", "-")
    grid.add_row("Created", _when(group.get("created_at")))
    if group.get("started_at"):
        grid.add_row("Started", _when(group["started_at"]))
    if group.get("finished_at"):
        grid.add_row("Finished", _when(group["finished_at"]))
    for warning in group.get("warnings") or []:
        grid.add_row("Warning", Text(warning, style="yellow"))
    title = f"Group {group['id']}" + (f" · {group['name']}" if group.get("name") else "")
    return Panel(grid, title=title, title_align="left", expand=False)


def _trial_table(trials: list[dict[str, Any]], objective: str | None) -> Table:
    params = list(dict.fromkeys(k for t in trials for k in t["params"]))
    others = sorted({k for t in trials for k in (t.get("values") or {})} - {objective})
    hyperband = any(t.get("bracket") is not None for t in trials)
    table = Table(header_style="bold")
    table.add_column("Trial", justify="right")
    table.add_column("Status")
    if objective:
        table.add_column(objective, justify="right", style="bold")
    for name in others:
        table.add_column(name, justify="right")
    if hyperband:
        for column in ("Bracket", "Rung"):
            table.add_column(column, justify="right")
    for name in params:
        table.add_column(name, justify="right")
    table.add_column("Note")
    for t in trials:
        values = t.get("values") or {}
        row: list[Any] = [str(t["id"]), _styled(t["status"])]
        if objective:
            row.append(_num(t.get("objective")))
        row += [_num(values.get(name)) for name in others]
        if hyperband:
            row += [_num(t.get("bracket")), _num(t.get("rung"))]
        row += [_num(t["params"].get(name)) for name in params]
        row.append(t.get("stop_reason") or "")
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------- stop / export


@group_cli.command("stop")
def stop(
    group_id: Annotated[int, typer.Argument(help="The group's id.")],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Stop a group: nothing more is handed out, running trials are told to stop."""
    with _service(url, token) as client:
        group = client.post(f"/api/v1/groups/{group_id}/stop")
    if as_json:
        _print_json(group)
        return
    running = (group.get("counts") or {}).get("running", 0)
    tail = f"; {running} running trial(s) will stop at their next report" if running else ""
    out.print(f"Group {group['id']} is {group['status']}{tail}")


@group_cli.command("export")
def export(
    group_id: Annotated[int, typer.Argument(help="The group's id.")],
    fmt: Annotated[
        str, typer.Option("--format", help="csv or json: every trial with params and values.")
    ] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Export a group's trials as CSV or JSON."""
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("csv or json", param_hint="--format")
    with _service(url, token) as client:
        response = client.request(
            "GET", f"/api/v1/groups/{group_id}/export", params={"format": fmt}
        )
    if output is None:
        sys.stdout.buffer.write(response.content)
        if not response.content.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    else:
        output.write_bytes(response.content)
        err.print(f"wrote group {group_id} to {output}", markup=False)


# --------------------------------------------------------------------------- agent


def _run_agent(
    url: str,
    token: str | None,
    group_id: int,
    command: list[str],
    parallel: int,
    heartbeat: float | None,
    grace: float,
    max_trials: int | None,
    quiet: bool,
) -> int:
    with _service(url, token, retries=3) as client:
        runner = Agent(
            client,
            group_id,
            command,
            parallel=parallel,
            heartbeat=heartbeat,
            grace=grace,
            max_trials=max_trials,
            echo=not quiet,
            console=out,
            token=token,
        )
        try:
            return runner.run()
        except ValueError as exc:
            err.print(f"error: {exc}", markup=False, soft_wrap=True)
            return 2


def agent(
    group_id: Annotated[int, typer.Argument(help="The group to train.")],
    command: CommandArgument = None,
    parallel: ParallelOption = 1,
    heartbeat: HeartbeatOption = None,
    grace: GraceOption = 10.0,
    max_trials: MaxTrialsOption = None,
    quiet: QuietOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Run a command for each trial of a group, N at a time, and report how it went.

    Example: hpo agent 7 -n 4 -- python train.py --lr {lr} --units {units}

    Placeholders: {name} is the trial's value of parameter `name` (format specs
    work: {lr:.4f}); {trial_id}, {group_id} and {resume_from} too. The command's
    environment has HPO_PARAMS (JSON), HPO_TRIAL_ID, HPO_GROUP_ID, HPO_URL,
    HPO_TOKEN and, for Hyperband, HPO_RESOURCE, HPO_RESUME_FROM and HPO_RESUME.

    Metrics: print lines like `hpo: loss=0.31 acc=0.9 step=3` (on stdout or
    stderr): `hpo:` first, then name=value pairs; `step` is optional and counts
    up by itself. Each line is reported to the service; the last values are the
    trial's final values. A command may instead report through the API itself
    (an SDK) with HPO_TRIAL_ID.

    Exit code 0 completes a trial as succeeded, anything else as failed. When the
    service says a trial should stop, its command gets SIGTERM (SIGKILL after
    --grace seconds) and the trial is reported stopped. Ctrl-C does the same for
    every running trial and exits with 130 (twice: no grace).
    """
    if not command:
        raise typer.BadParameter("give the command to run after `--`", param_hint="COMMAND")
    raise typer.Exit(
        _run_agent(url, token, group_id, command, parallel, heartbeat, grace, max_trials, quiet)
    )
