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

from drp.paths import repo_root


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
    # More than one database pair: a YAML/JSON file {pair id: {primary_dsn, standby_dsn}}; the
    # runbook's first pair defaults to DRP_PRIMARY_DSN / DRP_STANDBY_DSN.
    database_pairs: Path | None = None
    template_dir: Path | None = None  # user templates that replace drp.documents' own
    continuity_dir: Path | None = None  # the continuity plan's documents (Pasal 3(3))
    # ChatOps (docs/chatops.md): token + channel turn it on; the signing secret is for serve.
    slack_token: str | None = None  # secret: never logged (registered with the ledger)
    slack_channel: str | None = None  # default incident channel when the runbook names none
    slack_base_url: str = "https://slack.com/api/"
    slack_signing_secret: str | None = None  # secret: verifies `drp chatops serve` requests
    # Backups and the evidence archive. S3 credentials are NOT settings: boto3 reads the
    # standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a profile, or a role) itself.
    s3_endpoint_url: str | None = None  # None: AWS itself; e.g. http://127.0.0.1:9000 for MinIO
    s3_region: str = "us-east-1"
    s3_bucket: str = "drp-backups"  # backups with `repository: s3`
    backup_dir: Path = repo_root() / "backups"  # backups with `repository: local`
    backup_scratch_dir: Path = Path("/tmp")  # where restore tests unpack (needs the backup's size)
    restore_port: int = 25490  # the scratch PostgreSQL of the restore test (loopback)
    # Manual mode (docs/manual-mode.md): replaceable HS requirements table and number format.
    manual_requirements: Path | None = None  # CSV; None: the sample shipped in drp/data
    manual_number_format: Path | None = None  # YAML; None: drp/data/manual_number_format.yaml
    manual_max_bytes: int = 5 * 1024 * 1024  # largest declaration file accepted
    # Approvals (docs/approvals.md): the roster's TOTP secrets, a 0600 file outside the repo
    # and the evidence. Default: approvers.json in the lab's secrets directory.
    approver_secrets: Path | None = None

    def approver_secrets_file(self) -> Path:
        """``DRP_APPROVER_SECRETS``, or the lab's ``<lab root>/secrets/approvers.json``."""
        if self.approver_secrets is not None:
            return self.approver_secrets
        from drp.lab.config import LabConfig

        return LabConfig.from_env(self.lab_root).secrets_file.parent / "approvers.json"


def settings() -> Settings:
    return Settings()
