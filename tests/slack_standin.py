"""A Slack Web API stand-in on loopback, served over HTTP, for slack-sdk's ``base_url``.

Slack is an internet service, so tests may stand it in; this one speaks the Web API's wire
protocol (``POST /api/chat.postMessage`` with a JSON body and a bearer token, ``GET
/api/conversations.history?...``, answers ``{"ok": ...}``) so that the real ``WebClient``, its
retry handlers and its error handling are what the tests exercise.

It keeps channels and messages (with metadata, threads and in-place updates), records every
request, and can be told to misbehave, either for the next N calls (:meth:`SlackStandIn.fail`)
or until released (:meth:`SlackStandIn.hang`):

- ``ok_false``: HTTP 200 with ``{"ok": false, "error": ...}``;
- ``429``: HTTP 429 with ``Retry-After``;
- ``500``: HTTP 500;
- ``hang``: no answer until :meth:`release`; a request that hung is *not* processed (as if it
  never reached Slack), and is recorded as such.

It also accepts Prefect's custom-webhook notification (a ``chat.postMessage`` like any other).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    params: dict[str, Any]
    outcome: str  # ok | ok_false:<error> | 429 | 500 | hung | auth
    at: float = field(default_factory=time.time)
    authorization: str = ""


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    metadata: dict[str, Any] | None
    edits: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        return ((self.metadata or {}).get("event_payload") or {}).get("key")


class SlackStandIn:
    """Start with :meth:`start`; ``base_url`` goes to ``DRP_SLACK_BASE_URL``."""

    def __init__(self, port: int, token: str, channels: tuple[str, ...] = ()) -> None:
        self.port = port
        self.token = token
        self.requests: list[Request] = []
        self.messages: list[Message] = []
        self.channels: dict[str, str] = {}  # name -> id (the workspace's channels)
        for name in channels:
            self._channel_id(name)
        self._faults: list[tuple[str, str, Any]] = []  # (method or *, behaviour, argument)
        self._hang = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    # -- control -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> SlackStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._handle(self)

            def do_POST(self) -> None:
                standin._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def reset(self) -> None:
        self.release()
        with self._lock:
            self.requests.clear()
            self.messages.clear()
            self._faults.clear()

    def fail(self, behaviour: str, times: int = 1, *, method: str = "*", arg: Any = None) -> None:
        """The next ``times`` calls (of ``method``) misbehave: ok_false (arg: error), 429
        (arg: Retry-After seconds), 500 or hang."""
        with self._lock:
            self._faults.extend([(method, behaviour, arg)] * times)
        if behaviour == "hang":
            self._released.clear()

    def hang(self) -> None:
        """Every call hangs (unanswered, unprocessed) until :meth:`release`."""
        self._released.clear()
        self._hang.set()

    def release(self) -> None:
        self._hang.clear()
        self._released.set()

    # -- views for assertions ----------------------------------------------------------------
    def posted(self, method: str = "chat.postMessage") -> list[Request]:
        return [r for r in self.requests if r.method == method and r.outcome == "ok"]

    def thread(self, root_ts: str) -> list[Message]:
        return [m for m in self.messages if m.thread_ts == root_ts]

    def roots(self) -> list[Message]:
        return [m for m in self.messages if m.thread_ts is None]

    def channel_name(self, channel_id: str) -> str:
        return next((n for n, i in self.channels.items() if i == channel_id), channel_id)

    # -- the protocol ------------------------------------------------------------------------
    def _channel_id(self, channel: str) -> str:
        name = channel.removeprefix("#")
        if channel in self.channels.values():
            return channel
        if name not in self.channels:
            self.channels[name] = f"C{len(self.channels) + 1:08d}"
        return self.channels[name]

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(http.path)
        method = url.path.removeprefix("/api/").strip("/")
        params: dict[str, Any] = {
            k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()
        }
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        ctype = http.headers.get("Content-Type") or ""
        if body and "json" in ctype:
            params.update(json.loads(body))
        elif body:
            params.update({k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()})
        auth = http.headers.get("Authorization") or ""

        if self._hang.is_set():
            self.requests.append(Request(method, params, "hung", authorization=auth))
            self._released.wait(600)
            http.close_connection = True
            return
        fault = self._take_fault(method)
        if fault is not None:
            behaviour, arg = fault
            if behaviour == "hang":
                self.requests.append(Request(method, params, "hung", authorization=auth))
                self._released.wait(600)
                http.close_connection = True
                return
            if behaviour == "429":
                self.requests.append(Request(method, params, "429", authorization=auth))
                self._send(
                    http, 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(arg or 1)}
                )
                return
            if behaviour == "500":
                self.requests.append(Request(method, params, "500", authorization=auth))
                self._send(http, 500, {"ok": False, "error": "internal_error"})
                return
            error = arg or "channel_not_found"
            self.requests.append(Request(method, params, f"ok_false:{error}", authorization=auth))
            self._send(http, 200, {"ok": False, "error": error})
            return
        if auth != f"Bearer {self.token}":
            self.requests.append(Request(method, params, "auth", authorization=auth))
            self._send(http, 200, {"ok": False, "error": "invalid_auth"})
            return
        with self._lock:
            status, answer = self._answer(method, params)
            self.requests.append(
                Request(
                    method,
                    params,
                    "ok" if answer.get("ok") else f"ok_false:{answer.get('error')}",
                    authorization=auth,
                )
            )
        self._send(http, status, answer)

    def _take_fault(self, method: str) -> tuple[str, Any] | None:
        with self._lock:
            for index, (target, behaviour, arg) in enumerate(self._faults):
                if target in ("*", method):
                    del self._faults[index]
                    return behaviour, arg
        return None

    def _answer(self, method: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "auth.test":
            return 200, {"ok": True, "team": "lab", "user": "drp", "user_id": "U0DRPBOT1"}
        if method == "chat.postMessage":
            if not p.get("channel") or not (p.get("text") or p.get("blocks")):
                return 200, {"ok": False, "error": "no_text"}
            channel = self._channel_id(str(p["channel"]))
            blocks = p.get("blocks") or []
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
            metadata = p.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            thread_ts = p.get("thread_ts") or None
            if thread_ts and not any(m.ts == thread_ts for m in self.messages):
                return 200, {"ok": False, "error": "thread_not_found"}
            self.messages.append(
                Message(channel, ts, str(p.get("text") or ""), blocks, thread_ts, metadata)
            )
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}}
        if method == "chat.update":
            channel = self._channel_id(str(p.get("channel") or ""))
            found = next(
                (m for m in self.messages if m.ts == p.get("ts") and m.channel == channel), None
            )
            if found is None:
                return 200, {"ok": False, "error": "message_not_found"}
            found.history.append(found.text)
            found.text = str(p.get("text") or "")
            blocks = p.get("blocks") or []
            found.blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
            found.edits += 1
            return 200, {"ok": True, "channel": channel, "ts": found.ts}
        if method in ("conversations.history", "conversations.replies"):
            channel = self._channel_id(str(p.get("channel") or ""))
            if method == "conversations.replies":
                root = p.get("ts")
                found = [
                    m for m in self.messages if m.channel == channel and root in (m.ts, m.thread_ts)
                ]
            else:
                oldest = float(p.get("oldest") or 0)
                found = [
                    m
                    for m in self.messages
                    if m.channel == channel and m.thread_ts is None and float(m.ts) >= oldest
                ]
                found = list(reversed(found))  # newest first, as Slack does
            with_meta = str(p.get("include_all_metadata")).lower() in ("1", "true")
            return 200, {
                "ok": True,
                "channel": channel,
                "messages": [
                    {
                        "ts": m.ts,
                        "text": m.text,
                        "thread_ts": m.thread_ts,
                        **({"metadata": m.metadata} if with_meta and m.metadata else {}),
                    }
                    for m in found
                ],
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            }
        if method == "conversations.list":
            return 200, {
                "ok": True,
                "channels": [{"id": i, "name": n} for n, i in self.channels.items()],
                "response_metadata": {"next_cursor": ""},
            }
        return 404, {"ok": False, "error": "unknown_method"}

    @staticmethod
    def _send(
        http: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = json.dumps(body).encode()
        try:
            http.send_response(status)
            http.send_header("Content-Type", "application/json; charset=utf-8")
            http.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                http.send_header(k, v)
            http.end_headers()
            http.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
