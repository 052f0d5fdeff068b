"""The `hpo` command."""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from app.cli_group import agent, group_cli
from app.cli_projects import key_cli, project_cli
from app.config import get_settings, is_loopback

cli = typer.Typer(help="hpo-engine: hyperparameter search as a service.", no_args_is_help=True)
migrate_cli = typer.Typer(help="Move the database schema.", no_args_is_help=True)
cli.add_typer(migrate_cli, name="migrate")
cli.add_typer(group_cli, name="group")
cli.add_typer(project_cli, name="project")
cli.add_typer(key_cli, name="key")
cli.command()(agent)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [HPO_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [HPO_PORT].")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes [HPO_WORKERS].")] = None,
) -> None:
    """Run the API server; migrates the database first unless HPO_MIGRATE_ON_START=false."""
    import uvicorn

    from app.db import migrate
    from app.logging import configure_logging

    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    host = host or settings.host
    if settings.admin_key is None and not settings.allow_open and not is_loopback(host):
        typer.echo(
            f"hpo serve: refusing to serve {host} without API keys: anyone who reaches it could "
            "read and change every search. Set HPO_ADMIN_KEY (then create project keys with "
            "`hpo project`/`hpo key`), or set HPO_ALLOW_OPEN=true if the network is yours alone.",
            err=True,
        )
        raise typer.Exit(2)
    if settings.migrate_on_start:
        # Once, here, before any server process starts; they are told not to.
        migrate.upgrade(settings.database_url)
        os.environ["HPO_MIGRATE_ON_START"] = "false"
    # Each server process writes its Prometheus samples here; /metrics adds them up.
    samples = tempfile.mkdtemp(prefix="hpo-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = samples
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port or settings.port,
            workers=workers or settings.workers,
            access_log=settings.access_log,
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    finally:  # a SIGKILLed server leaves its folder behind; nothing else reads it
        shutil.rmtree(samples, ignore_errors=True)


@cli.command()
def worker(
    poll: Annotated[
        float | None, typer.Option(help="Seconds between rounds [HPO_WORKER_POLL_SECONDS].")
    ] = None,
    depth: Annotated[
        int | None, typer.Option(help="Suggestions kept ready per group [HPO_WORKER_QUEUE_DEPTH].")
    ] = None,
) -> None:
    """Precompute suggestions of model-based groups (bo, tpe) off the request path."""
    import signal
    import threading

    from app.db.engine import Database
    from app.logging import configure_logging
    from app.services import precompute

    settings = get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    db = Database(settings.database_url, pool_size=2, max_overflow=2)
    try:
        precompute.run(
            db,
            poll_seconds=poll or settings.worker_poll_seconds,
            depth=depth or settings.worker_queue_depth,
            stop=stop,
        )
    finally:
        db.dispose()


@migrate_cli.command("up")
def migrate_up(revision: str = "head") -> None:
    """Upgrade the schema (to the newest revision by default)."""
    from app.db import migrate

    migrate.upgrade(get_settings().database_url, revision)
    typer.echo(f"schema at {migrate.current(get_settings().database_url)}")


@migrate_cli.command("down")
def migrate_down(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Downgrade the schema."""
    from app.db import migrate

    migrate.downgrade(get_settings().database_url, revision)
    typer.echo(f"schema at {migrate.current(get_settings().database_url)}")


@migrate_cli.command("current")
def migrate_current() -> None:
    """Print the schema's revision."""
    from app.db import migrate

    typer.echo(migrate.current(get_settings().database_url) or "(empty)")


@cli.command()
def openapi(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Print (or write) the OpenAPI document of this version of the service."""
    from app.main import create_app

    text = json.dumps(create_app().openapi(), indent=2, sort_keys=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
