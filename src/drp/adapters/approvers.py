"""The approvers' one-time-code secrets: one TOTP secret (RFC 6238, via pyotp) per roster
person, in a JSON file outside the repository and the evidence.

The file is named by ``DRP_APPROVER_SECRETS`` (default: ``approvers.json`` in the lab's secrets
directory, ``.lab/secrets/``). It is created 0600 in a 0700 directory, and refused when anyone
but its owner may read it (like ssh refuses a readable private key). Writes (enrol, revoke) take
an exclusive lock on a ``.lock`` file beside it and replace the file atomically, so that two
enrolments at once never lose one. Reads take no lock: a reader sees the old or the new file.

Nothing here decides whether an answer is accepted (``drp.domain.approval`` does): this module
only says whether a person is enrolled and which time step a code matches. Neither the secret
nor the code is ever logged or returned in a message.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp

from drp.domain.approval import CLOCK_SKEW_STEPS, well_formed_code
from drp.errors import DrpError

ISSUER = "drp"
PERIOD_S = 30
VERSION = 1


class ApproverSecretsError(DrpError):
    """The approvers' secrets file cannot be used (missing, unsafe, unreadable)."""


@dataclass(frozen=True)
class Enrolment:
    """Who is enrolled and since when (never the secret)."""

    name: str
    enrolled_at: str


class ApproverSecrets:
    """One secrets file. ``lab`` files (made by ``drp lab up``) may show current codes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- reading -----------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {"version": VERSION, "lab": False, "people": {}}
        except OSError as exc:
            raise ApproverSecretsError(f"cannot read {self.path}: {exc}") from exc
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ApproverSecretsError(
                f"{self.path} may be read by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"refused — it holds the approvers' secrets (fix: chmod 600 {self.path})"
            )
        if info.st_uid != os.geteuid():
            raise ApproverSecretsError(
                f"{self.path} belongs to uid {info.st_uid}, not to this user ({os.geteuid()}): "
                "refused (the worker that checks codes must own its secrets file)"
            )
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ApproverSecretsError(
                f"{self.path} is not a drp approvers' secrets file ({type(exc).__name__}); "
                "restore it from your backup or re-enrol everyone"
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("people"), dict):
            raise ApproverSecretsError(f"{self.path}: no 'people' in it: not a secrets file")
        return data

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def is_lab(self) -> bool:
        """Made for the embedded lab (``drp lab up``): its codes may be shown on request."""
        return bool(self._read().get("lab"))

    def enrolled(self) -> dict[str, Enrolment]:
        """Everyone enrolled, by name."""
        return {
            name: Enrolment(name, str(entry.get("enrolled_at", "")))
            for name, entry in self._read()["people"].items()
        }

    def is_enrolled(self, name: str) -> bool:
        return name in self._read()["people"]

    def _totp(self, name: str) -> pyotp.TOTP | None:
        entry = self._read()["people"].get(name)
        if not entry:
            return None
        return pyotp.TOTP(entry["secret"], interval=PERIOD_S, name=name, issuer=ISSUER)

    def matching_step(self, name: str, code: str, at: float | None = None) -> int | None:
        """The time step ``code`` is valid for (now ±1 step), or None (no match, not enrolled,
        not six digits). Constant-time comparison (pyotp's)."""
        totp = self._totp(name)
        if totp is None or not well_formed_code(code.strip()):
            return None
        try:
            return totp.verify_and_get_timecode(
                code.strip(),
                for_time=time.time() if at is None else at,
                valid_window=CLOCK_SKEW_STEPS,
            )
        except pyotp.exceptions.OTPVerificationError:
            return None

    def code_now(self, name: str, at: float | None = None) -> str:
        """The current code of ``name``: only for a lab file (``drp roster code``, tests)."""
        if not self.is_lab:
            raise ApproverSecretsError(
                f"{self.path} is not the lab's: codes are shown only for the embedded lab's "
                "roster (a real approver reads theirs from their authenticator app)"
            )
        totp = self._totp(name)
        if totp is None:
            raise ApproverSecretsError(f"{name} is not enrolled in {self.path}")
        return totp.at(time.time() if at is None else at)

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            yield data
            self._write(data)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".approvers-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def enrol(self, name: str, *, replace: bool = False, lab: bool = False) -> str:
        """Give ``name`` a new secret; return its ``otpauth://`` URI (for the authenticator
        app, to be shown once). Refused when already enrolled unless ``replace``."""
        with self._locked() as data:
            if name in data["people"] and not replace:
                raise ApproverSecretsError(
                    f"{name} is already enrolled (since {data['people'][name].get('enrolled_at')}"
                    f"); to give them a new secret (the old codes stop working): "
                    f"drp roster enroll {name} --replace"
                )
            if lab:
                data["lab"] = True
            data["version"] = VERSION
            secret = pyotp.random_base32()
            data["people"][name] = {
                "secret": secret,
                "enrolled_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        return pyotp.TOTP(secret, interval=PERIOD_S).provisioning_uri(name=name, issuer_name=ISSUER)

    def revoke(self, name: str) -> bool:
        """Remove ``name``'s secret (their codes stop working); False when not enrolled."""
        with self._locked() as data:
            return data["people"].pop(name, None) is not None
