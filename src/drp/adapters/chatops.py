"""Slack Web API adapter (slack-sdk ``WebClient``): post, update, and find what was posted.

Thin and typed. Three calls the outbox needs, nothing more: :meth:`SlackChat.post` (with the
message's idempotency key in Slack message metadata), :meth:`SlackChat.update` (the status
message, in place) and :meth:`SlackChat.find_posted` (was a message with this key already
posted? asked before any re-send, so that a crash or a timeout between send and acknowledge
never posts twice).

Errors become :class:`ChatError` with two facts the sender acts on: ``retryable`` (429, 5xx,
timeouts, connection errors: try again later, keep the order) and ``retry_after`` (Slack's
``Retry-After``). A 429 is retried inside slack-sdk by its ``RateLimitErrorRetryHandler``,
which sleeps ``Retry-After``; a 5xx or a timeout is *not* retried there, because the post may
have landed: the sender looks it up before sending again. The token never leaves this object
(messages say the base URL and the method, never the token).
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from drp.errors import AdapterError

METADATA_EVENT = "drp_message"
"""The Slack message metadata ``event_type`` that carries a message's idempotency key."""

DEFAULT_BASE_URL = "https://slack.com/api/"

# Slack answers ok:false with these when the token, not the message, is the problem: the
# message stays queued until the token is fixed rather than being marked failed.
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}
)


class ChatError(AdapterError):
    """Slack refused or could not be reached. ``retryable``: try again later (order kept);
    ``auth``: the token is wrong (nothing will go until it is fixed); ``retry_after``: seconds
    Slack asked us to wait; ``code``: Slack's error code or the HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str = "",
        retry_after: float | None = None,
        auth: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.retry_after = retry_after
        self.auth = auth


@dataclass(frozen=True)
class Posted:
    """Where Slack put a message."""

    channel: str
    ts: str


class SlackChat:
    """One ``WebClient`` with a bounded timeout and Slack's rate-limit retry handler."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: int = 10,
        rate_limit_retries: int = 2,
    ) -> None:
        if not token:
            raise ChatError("no Slack token: set DRP_SLACK_TOKEN", retryable=False, auth=True)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._client = WebClient(
            token=token,
            base_url=self.base_url,
            timeout=timeout_s,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=rate_limit_retries)],
        )
        self._channel_ids: dict[str, str] = {}

    def post(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str,
    ) -> Posted:
        """Post a message carrying ``key`` in its metadata; returns its channel id and ts."""
        answer = self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks or None,
                thread_ts=thread_ts,
                unfurl_links=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
            ),
        )
        return Posted(str(answer.get("channel") or channel), str(answer["ts"]))

    def update(
        self, channel: str, ts: str, text: str, *, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """Rewrite a posted message (idempotent: the same update twice shows the same thing)."""
        self._call(
            "chat.update",
            lambda: self._client.chat_update(
                channel=channel, ts=ts, text=text, blocks=blocks or None
            ),
        )

    def channel_id(self, channel: str) -> str:
        """The conversation id of ``channel`` (``#name``, ``name`` or an id).

        Posting accepts a name, but reading history needs the id: names are resolved with
        ``conversations.list`` (scopes ``channels:read``, ``groups:read``) and kept.
        """
        if not channel.startswith("#") and channel[:1] in ("C", "G", "D") and channel.isupper():
            return channel
        name = channel.removeprefix("#")
        if name in self._channel_ids:
            return self._channel_ids[name]
        cursor: str | None = None
        for _ in range(20):
            page = self._call(
                "conversations.list",
                lambda c=cursor: self._client.conversations_list(
                    types="public_channel,private_channel", limit=200, cursor=c
                ),
            )
            for found in page.get("channels") or []:
                self._channel_ids[str(found.get("name"))] = str(found.get("id"))
            if name in self._channel_ids:
                return self._channel_ids[name]
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        raise ChatError(
            f"Slack channel {channel} is not visible to the app (conversations.list): check the "
            "name and invite the app",
            retryable=False,
            code="channel_not_found",
        )

    def find_posted(
        self, channel: str, key: str, *, thread_ts: str | None = None, oldest: str | None = None
    ) -> Posted | None:
        """The message already posted with ``key`` (in a thread, or in the channel since
        ``oldest``), or None. Reads up to a few pages: the key is recent."""
        channel = self.channel_id(channel)
        cursor: str | None = None
        for _ in range(5):
            if thread_ts:
                page = self._call(
                    "conversations.replies",
                    lambda c=cursor: self._client.conversations_replies(
                        channel=channel,
                        ts=thread_ts,
                        include_all_metadata=True,
                        limit=200,
                        cursor=c,
                    ),
                )
            else:
                page = self._call(
                    "conversations.history",
                    lambda c=cursor: self._client.conversations_history(
                        channel=channel,
                        oldest=oldest,
                        include_all_metadata=True,
                        limit=200,
                        cursor=c,
                    ),
                )
            for message in page.get("messages") or []:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == METADATA_EVENT and payload.get("key") == key:
                    return Posted(str(page.get("channel") or channel), str(message["ts"]))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    def _call(self, method: str, call: Any) -> dict[str, Any]:
        """Run one Web API call; translate every failure into a :class:`ChatError`."""
        where = f"Slack {method} at {self.base_url}"
        try:
            response = call()
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or "") if exc.response.data else ""
            if status == 429:
                after = exc.response.headers.get("Retry-After") or exc.response.headers.get(
                    "retry-after"
                )
                wait = _seconds(after)
                raise ChatError(
                    f"{where}: rate limited (429), retry after {wait or '?'} s",
                    retryable=True,
                    code="429",
                    retry_after=wait,
                ) from None
            if status >= 500:
                raise ChatError(
                    f"{where}: HTTP {status} {error}".strip(), retryable=True, code=str(status)
                ) from None
            if error in AUTH_ERRORS:
                raise ChatError(
                    f"{where}: {error}: the token is not accepted (check DRP_SLACK_TOKEN and "
                    "the app's installation)",
                    retryable=True,
                    code=error,
                    auth=True,
                ) from None
            raise ChatError(
                f"{where}: {error or f'HTTP {status}'}{_hint(error)}",
                retryable=error in RETRYABLE_ERRORS,
                code=error or str(status),
            ) from None
        except (urllib.error.URLError, OSError) as e:  # timeouts and connection errors
            raise ChatError(
                f"{where}: no answer ({type(e).__name__}: {e}); the message may or may not "
                "have been posted",
                retryable=True,
                code="no-answer",
            ) from None
        except SlackClientError as exc:
            raise ChatError(f"{where}: {exc}", retryable=False, code="client") from None
        return dict(response.data) if isinstance(response.data, dict) else {}


def _seconds(value: Any) -> float | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _hint(error: str) -> str:
    hints = {
        "channel_not_found": " (the channel name is wrong or the app cannot see it)",
        "not_in_channel": " (invite the app to the channel: /invite @drp)",
        "missing_scope": " (add the scope in the app's OAuth settings and reinstall)",
        "invalid_blocks": " (the Block Kit payload was refused; the fallback text was not sent)",
        "msg_too_long": " (the message is too long)",
    }
    return hints.get(error, "")
