"""One exception tree for the whole platform.

Every error a user can see derives from :class:`DrpError`; its message says what went wrong *and*
what to do next. Adapters translate library exceptions (psycopg, paramiko, ansible-runner, ...)
into these so that callers never depend on a library's exception types.
"""

from __future__ import annotations


class DrpError(Exception):
    """Base of every error the platform raises on purpose."""


class RunbookError(DrpError):
    """A runbook (or inventory, or parameter) is invalid; ``problems`` lists every place."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class PreconditionFailed(DrpError):
    """A check that must hold before acting does not hold."""


class FencingFailed(DrpError):
    """The old primary could not be proven fenced; promotion must not go ahead."""


class ReplicationLagExceeded(DrpError):
    """The standby is further behind than the runbook's RPO allows."""


class EvidenceError(DrpError):
    """The evidence ledger cannot be written or read."""


class LabError(DrpError):
    """The embedded lab cannot do what was asked."""


class AdapterError(DrpError):
    """An outside system failed; subclasses name which one."""


class PostgresError(AdapterError):
    """PostgreSQL could not be reached or refused a statement."""


class SshError(AdapterError):
    """An SSH connection or command failed (including an unknown or changed host key)."""


class PlaybookFailed(AdapterError):
    """An Ansible playbook ended with failed or unreachable hosts."""
