"""Domain errors, raised by services and turned into RFC 9457 problems by the API.

ServiceError              500  unexpected state; never raised on purpose for user input
├── NotFound              404  no such group or trial
├── Conflict              409  the request clashes with stored state
│   └── IdempotencyMismatch  409  a key reused with another request
├── InvalidRequest        422  input the schema could not catch (path in `errors`)
└── Unavailable           503  the database cannot be reached just now
"""

from typing import Any


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"
    title = "Not found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class IdempotencyMismatch(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with another request"


class InvalidRequest(ServiceError):
    status_code = 422
    code = "invalid_request"
    title = "Invalid request"


class Unavailable(ServiceError):
    status_code = 503
    code = "unavailable"
    title = "Service unavailable"
