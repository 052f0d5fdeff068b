"""Settings, read from HPO_* environment variables only.

Every setting is listed in the README's settings table; keep the two in step.
"""

import ipaddress
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HPO_", extra="ignore")

    database_url: str = "sqlite:///./hpo.db"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)
    migrate_on_start: bool = True
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    access_log: bool = False
    default_lease_seconds: int = Field(default=600, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_suggestions_per_request: int = Field(default=100, ge=1)
    max_wait_seconds: float = Field(default=60.0, ge=0)
    worker_poll_seconds: float = Field(default=0.2, gt=0)
    worker_queue_depth: int = Field(default=4, ge=1)
    housekeeping_seconds: float = Field(default=30.0, gt=0)
    idempotency_ttl_hours: float = Field(default=24.0, gt=0)
    # With an admin key every API request needs a key; without one the service runs open,
    # which it does only on a loopback address unless `allow_open` says so.
    admin_key: SecretStr | None = Field(default=None, min_length=16)
    allow_open: bool = False
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)

    @field_validator("database_url")
    @classmethod
    def _normalise_driver(cls, url: str) -> str:
        # People paste libpq-style URLs; SQLAlchemy would pick psycopg2 for them.
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def admin_key_value(self) -> str | None:
        return self.admin_key.get_secret_value() if self.admin_key else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
