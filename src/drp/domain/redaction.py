"""Redaction at the boundary: secrets never reach a ledger, a log or an attachment.

DESIGN.md asks that passwords, tokens and keys be masked where data leaves an adapter, so that an
auditor can read every record of a run without ever seeing a credential. Two rules work
together:

- **by key**: in a mapping, the value of a key that *looks* secret (``password``,
  ``db_password``, ``slackToken``, ``X-Api-Key``, ...) is replaced whole by :data:`MASK`,
  whatever its type, because the key alone says it must not be kept;
- **by shape**: inside any string, the well-known forms a secret takes in our tools are masked
  in place (URL userinfo passwords, libpq ``password=...``, ``key: value`` pairs whose key looks
  secret, ``Authorization`` and ``Cookie`` headers, ``Bearer`` tokens, Slack tokens), and so is
  any exact value the caller knows to be secret (``known_secrets``).

Masking errs on the side of hiding too much: a masked word in an error message costs little, a
leaked password in evidence that is kept for years costs a great deal. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
"""What a secret is replaced with."""

SECRET_WORDS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "authorization",
    "cookie",
    "credentials",
)
"""Key endings that mark a value as secret (compared lower-case, separators ignored)."""

_COMPACT_WORDS: tuple[str, ...] = tuple(sorted({word.replace("_", "") for word in SECRET_WORDS}))

_PASS_SUFFIX = re.compile(r"(?:^|[_\-\s])pass$", re.IGNORECASE)
"""Ansible spells passwords ``ansible_become_pass``, ``ansible_ssh_pass``; ``bypass`` is not one."""

_WORDS_RE = (
    r"(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|private[_-]?key|credentials"
    r"|cookie|_pass)"
)

_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)(?P<pw>[^@/\s]+)@")
"""``scheme://user:password@host``: the password part of a URL's userinfo."""

_KEY_VALUE = re.compile(
    r"(?P<key>\b[\w.-]*?" + _WORDS_RE + r")\b"
    r"(?P<sep>[\"']?\s*[:=]\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s\"',;&}\]]+)",
    re.IGNORECASE,
)
"""``password=x`` (libpq conninfo, query strings, env), ``"db_password": "x"``, ``token: x``."""

_AUTHORIZATION = re.compile(
    r"(?P<head>\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest)\s+)?)"
    r"(?P<value>[^\s\"',;]+)",
    re.IGNORECASE,
)
"""``Authorization: Bearer x`` and its JSON and ``key=value`` spellings."""

_BEARER = re.compile(r"(?P<head>\bbearer\s+)(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
"""A bearer token on its own, wherever it appears."""

_COOKIE_HEADER = re.compile(r"(?im)^(?P<head>[ \t]*(?:set-)?cookie[ \t]*:[ \t]*)(?P<value>.+)$")
"""A ``Cookie:`` or ``Set-Cookie:`` header line: every cookie on it is masked."""

_SLACK_TOKEN = re.compile(r"\b(?P<head>xox[abpr]-)(?P<value>[A-Za-z0-9-]+)")
"""Slack bot, app-level, user and refresh tokens (``xoxb-...``)."""


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret, as a whole word or as a suffix (``db_password``).

    Separators are ignored so that ``privateKey``, ``private-key`` and ``PRIVATE_KEY`` agree.
    """
    compact = _compact(key)
    if any(compact.endswith(word) for word in _COMPACT_WORDS):
        return True
    return _PASS_SUFFIX.search(key) is not None


def _compact(key: str) -> str:
    """A key lower-cased with ``_``, ``-`` and spaces removed, for suffix comparison."""
    return re.sub(r"[\s_-]", "", key.lower())


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret it contains masked: known exact values first, then by shape.

    Known values go first so that a password which also appears outside any recognisable shape
    (in a command's echoed output, say) is still masked; longer values go before shorter ones so
    that a secret containing another is masked whole.
    """
    for secret in _ordered(known_secrets):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _COOKIE_HEADER.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    return _SLACK_TOKEN.sub(lambda m: f"{m['head']}{MASK}", text)


def redact(obj: Any, known_secrets: Iterable[str] = ()) -> Any:
    """A deep copy of ``obj`` (JSON-like data) with secrets masked by key and by shape.

    Mappings become dicts and tuples become lists, as they would in JSON. Keys are kept (they
    say *what* was hidden) but their text is redacted too, in case a key carries a secret.
    """
    return _redact(obj, tuple(_ordered(known_secrets)))


def _redact(obj: Any, known: tuple[str, ...]) -> Any:
    """The recursion behind :func:`redact`, with ``known`` already ordered once."""
    if isinstance(obj, str):
        return redact_text(obj, known)
    if isinstance(obj, Mapping):
        return {
            _redact_key(key, known): MASK
            if isinstance(key, str) and is_secret_key(key)
            else _redact(value, known)
            for key, value in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [_redact(item, known) for item in obj]
    return obj


def _redact_key(key: Any, known: tuple[str, ...]) -> Any:
    """A mapping key with secrets in its text masked; non-string keys are left alone."""
    return redact_text(key, known) if isinstance(key, str) else key


def _ordered(known_secrets: Iterable[str]) -> list[str]:
    """Distinct non-empty secrets, longest first (an empty string would match everywhere)."""
    return sorted({s for s in known_secrets if s}, key=len, reverse=True)


def _mask_key_value(match: re.Match[str]) -> str:
    """Keep the key and separator, mask the value, and keep its quotes so JSON stays JSON."""
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{match['sep']}{quote}{MASK}{quote}"
