#!/usr/bin/env python
"""Generate the Python SDK (package `hpo_engine_client`) from openapi/openapi.json.

    python openapi/generate_sdk.py [--out DIR] [--meta setup|none|pdm|poetry|uv]

Runs openapi-python-client (installed by the `test` extra) on the committed spec
with openapi/sdk-config.yaml. Nothing is fetched: the spec is read from disk and
the post-generation formatting uses the ruff next to this Python. The default
`--meta setup` writes a setup.py project, the one that `pip install DIR` builds
with nothing but setuptools; `--meta none` writes the bare package into DIR.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC = HERE / "openapi.json"
CONFIG = HERE / "sdk-config.yaml"
PACKAGE = "hpo_engine_client"
DEFAULT_OUT = REPO / "build" / "hpo-engine-client"  # build/ is git-ignored


def package_dir(out: Path, meta: str) -> Path:
    """Where the importable package ends up for a given --meta."""
    return out if meta == "none" else out / PACKAGE


def check_replaceable(out: Path, meta: str) -> None:
    """Only ever delete an empty folder or an earlier generation of this SDK."""
    if not out.exists():
        return
    if not out.is_dir():
        sys.exit(f"{out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not (package_dir(out, meta) / "client.py").is_file():
        sys.exit(
            f"{out} is not empty and does not hold a generated {PACKAGE} (--meta {meta});"
            " refusing to replace it"
        )


def generate(out: Path, meta: str = "setup", spec: Path = SPEC, config: Path = CONFIG) -> Path:
    """Generate the SDK into `out` (replacing an earlier generation); return the package dir."""
    if importlib.util.find_spec("openapi_python_client") is None:
        sys.exit("openapi-python-client is not installed: pip install -e '.[test]'")
    out = out.resolve()
    check_replaceable(out, meta)
    # The generator writes over what is there; start afresh so that removed
    # operations and models do not linger.
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    # Its post hooks call `ruff` by name: make it find the one installed with it.
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", "")])
    command = [
        sys.executable, "-m", "openapi_python_client", "generate",
        "--path", str(spec),
        "--config", str(config),
        "--output-path", str(out),
        "--meta", meta,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"openapi-python-client failed (exit status {done.returncode})")
    package = package_dir(out, meta)
    if not (package / "client.py").is_file():
        sys.exit(f"openapi-python-client did not write {package}")
    return package


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder to write (default: {DEFAULT_OUT.relative_to(REPO)})",
    )
    parser.add_argument(
        "--meta",
        choices=["setup", "none", "pdm", "poetry", "uv"],
        default="setup",
        help="project files around the package (default: setup, installs with plain pip)",
    )
    parser.add_argument("--spec", type=Path, default=SPEC, help="OpenAPI document to read")
    args = parser.parse_args(argv)

    package = generate(args.out, args.meta, args.spec)
    if args.meta == "none":
        hint = f"use it with: PYTHONPATH={package.parent}"
    else:
        hint = f"install it with: pip install {args.out.resolve()}"
    sys.stdout.write(f"\n{PACKAGE} written to {package}\n{hint}\n")


if __name__ == "__main__":
    main()
