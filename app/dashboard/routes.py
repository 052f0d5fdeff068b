"""Serves the dashboard: `/` is the page, `/static/<version>/<file>` its scripts and styles.

Everything the page needs ships in `app/dashboard/static`; nothing is fetched from
elsewhere, and the Content-Security-Policy says so to the browser. The files are read
once and held in memory (they are small). Their URLs carry a hash of their contents,
so they can be cached for good, while the page itself is revalidated on each visit.
"""

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(?:js|css|svg)$")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Only this origin, for scripts, styles, data and images alike; no inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_FOREVER = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Bundle:
    version: str
    files: dict[str, bytes]
    index: bytes


def _stamp() -> tuple[tuple[str, int, int], ...]:
    # Cheap to take (a dozen stats): an edited file is served without a restart.
    return tuple(
        (entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
        for entry in sorted(os.scandir(STATIC_DIR), key=lambda e: e.name)
        if entry.is_file()
    )


def bundle() -> Bundle:
    return _load(_stamp())


@lru_cache(maxsize=1)
def _load(stamp: tuple[tuple[str, int, int], ...]) -> Bundle:
    files = {
        path.name: path.read_bytes()
        for path in sorted(STATIC_DIR.iterdir())
        if path.is_file() and _NAME.match(path.name)
    }
    digest = hashlib.sha256()
    for name, content in files.items():
        digest.update(name.encode() + b"\0" + content)
    version = digest.hexdigest()[:12]
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    index = page.replace("{{static}}", f"/static/{version}").encode()
    return Bundle(version=version, files=files, index=index)


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
def index() -> Response:
    """The dashboard's single page; its routes live after the `#`."""
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": _CSP,
        **_SECURITY_HEADERS,
    }
    return HTMLResponse(bundle().index, headers=headers)


@router.api_route("/static/{version}/{name}", methods=["GET", "HEAD"])
def static_file(version: str, name: str, request: Request) -> Response:
    """A script, style or image of the dashboard, by content version."""
    files = bundle()
    content = files.files.get(name)
    if content is None:
        return Response(status_code=404, content=b"not found", media_type="text/plain")
    current = version == files.version
    etag = f'"{files.version}"'
    headers = {
        "Cache-Control": _FOREVER if current else "no-cache",
        "ETag": etag,
        **_SECURITY_HEADERS,
    }
    media_type = _MEDIA_TYPES[Path(name).suffix]
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=media_type, headers=headers)
