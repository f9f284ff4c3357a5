"""Settings from the environment (``DRP_`` prefix), with lab defaults; nothing secret in files.

For a production runbook the flow needs the databases' and the front door's addresses, which
are not in the runbook (they are per site and may hold secrets): ``DRP_PRIMARY_DSN``,
``DRP_STANDBY_DSN`` (libpq strings; prefer a ``passfile=`` over a password) and
``DRP_FRONTDOOR_URL``; optionally ``DRP_STANDBY_APP_URL`` (the DRC application's own
address, so that an app already running is not started again) and ``DRP_OPS_DSN`` (the
platform's own database, where the readiness check keeps its alert state). For the lab they are
derived from the lab itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from drp.lab.config import repo_root


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRP_", extra="ignore")

    evidence_dir: Path = repo_root() / "evidence"
    lab_root: Path | None = None
    primary_dsn: str | None = None
    standby_dsn: str | None = None
    frontdoor_url: str | None = None
    standby_app_url: str | None = None
    inventory_extra: Path | None = None
    ops_dsn: str | None = None  # the platform's own database (alert state); the lab has its own


def settings() -> Settings:
    return Settings()
