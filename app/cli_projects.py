"""`hpo project ...` and `hpo key ...`: the admin's side of projects and API keys.

These commands need the admin key (`--token`, or HPO_TOKEN): the one the
service was started with as HPO_ADMIN_KEY.
"""

from typing import Annotated

import typer
from rich.table import Table

from app.agent import DEFAULT_URL
from app.cli_group import JsonOption, TokenOption, UrlOption, _print_json, _service, err, out

project_cli = typer.Typer(help="Create and list projects (admin key).", no_args_is_help=True)
key_cli = typer.Typer(help="Create, list and revoke API keys (admin key).", no_args_is_help=True)

ProjectArgument = Annotated[str, typer.Argument(help="The project's name.")]


@project_cli.command("create")
def project_create(
    name: ProjectArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a project."""
    with _service(url, token) as client:
        project = client.post("/api/v1/projects", json={"name": name})
    if as_json:
        _print_json(project)
    else:
        out.print(f"Created project {project['name']} (id {project['id']})", markup=False)


@project_cli.command("list")
def project_list(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """List projects with how many groups each holds."""
    with _service(url, token) as client:
        page = client.get("/api/v1/projects")
    if as_json:
        _print_json(page)
        return
    table = Table("id", "name", "groups", "created")
    for p in page["items"]:
        table.add_row(str(p["id"]), p["name"], str(p["groups"]), p["created_at"][:19])
    out.print(table)


@key_cli.command("create")
def key_create(
    project: ProjectArgument,
    role: Annotated[str, typer.Option(help="read (look only) or write (run searches).")] = "write",
    name: Annotated[str | None, typer.Option(help="A note: whose key it is.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a key of a project; the key is printed once and cannot be shown again."""
    if role not in ("read", "write"):
        raise typer.BadParameter("read or write", param_hint="--role")
    body = {"role": role} | ({"name": name} if name else {})
    with _service(url, token) as client:
        key = client.post(f"/api/v1/projects/{project}/keys", json=body)
    if as_json:
        _print_json(key)
        return
    out.print(key["key"], markup=False)
    err.print(
        f"a {key['role']} key of project {key['project']} (key id {key['key_id']}); "
        "keep it now: it is not shown again",
        markup=False,
    )


@key_cli.command("list")
def key_list(
    project: ProjectArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List a project's keys (without their secrets)."""
    with _service(url, token) as client:
        page = client.get(f"/api/v1/projects/{project}/keys")
    if as_json:
        _print_json(page)
        return
    table = Table("key id", "role", "name", "created", "revoked")
    for k in page["items"]:
        revoked = (k["revoked_at"] or "")[:19]
        table.add_row(k["key_id"], k["role"], k["name"] or "", k["created_at"][:19], revoked)
    out.print(table)


@key_cli.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`hpo key list` shows it).")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Revoke a key: every later request with it is refused."""
    with _service(url, token) as client:
        key = client.request("DELETE", f"/api/v1/keys/{key_id}").json()
    out.print(f"Revoked key {key['key_id']} of project {key['project']}", markup=False)
