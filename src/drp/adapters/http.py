"""JSON over HTTP with the standard library: the SKP applications' health and declarations, the
front door's status. Thin: (status, data), status 0 when the other side cannot be reached."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def http_json(
    url: str,
    body: Any = None,
    timeout: float = 5.0,
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """GET (or POST ``body``, or ``method``), decode the JSON: (status, data); status 0 when
    unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method or ("POST" if body is not None else "GET"),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None
