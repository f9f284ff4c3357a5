"""Redaction at the boundary (drp.domain.redaction): secrets never reach a ledger or a log."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drp.domain.redaction import MASK, is_secret_key, redact, redact_text

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "token",
        "slack_token",
        "slackToken",
        "api_key",
        "X-Api-Key",
        "apikey",
        "private_key",
        "ssh_private_key",
        "privateKey",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "credentials",
        "db_password",
        "PGPASSWORD",
        "ansible_become_pass",
        "ansible_ssh_pass",
    ],
)
def test_keys_that_name_a_secret_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["host", "user", "tokens", "max_tokens", "password_file", "token_type", "secretary", "bypass"],
)
def test_keys_that_only_contain_a_secret_word_are_not(key: str) -> None:
    assert not is_secret_key(key)


def test_values_of_secret_keys_are_masked_whatever_their_type_at_any_depth() -> None:
    data = {
        "host": "drc-db",
        "db_password": "hunter2",
        "nested": [{"Slack_Token": {"value": "xoxb-1"}, "port": 5433}],
        "api_key": 12345,
    }
    assert redact(data) == {
        "host": "drc-db",
        "db_password": MASK,
        "nested": [{"Slack_Token": MASK, "port": 5433}],
        "api_key": MASK,
    }


def test_redact_returns_a_copy_and_leaves_its_input_alone() -> None:
    data = {"password": "hunter2", "steps": [{"dsn": "postgresql://u:pw@h/db"}]}
    before = copy.deepcopy(data)
    result = redact(data)
    assert data == before
    result["steps"][0]["dsn"] = "changed"
    assert data == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgresql://replicator:hunter2@drc-db:5433/skp",
            "postgresql://replicator:***@drc-db:5433/skp",
        ),
        ("https://ops:pa:ss@s3.local/bucket", "https://ops:***@s3.local/bucket"),
        ("postgresql://replicator@drc-db/skp", "postgresql://replicator@drc-db/skp"),
        ("http://drc-db:8080/health", "http://drc-db:8080/health"),
        (
            "host=dc-db port=5432 user=postgres password=hunter2 dbname=skp",
            "host=dc-db port=5432 user=postgres password=*** dbname=skp",
        ),
        ("host=dc-db password='hun ter2' dbname=skp", "host=dc-db password='***' dbname=skp"),
        ("PGPASSWORD=hunter2 psql -h dc-db", "PGPASSWORD=*** psql -h dc-db"),
        ('{"db_password": "hunter2", "host": "dc-db"}', '{"db_password": "***", "host": "dc-db"}'),
        (
            "ansible_become_pass: x\nvault_token: s.abc",
            "ansible_become_pass: ***\nvault_token: ***",
        ),
        ("bypass: yes", "bypass: yes"),
        ("GET /hook?token=abc123&x=1", "GET /hook?token=***&x=1"),
        ("Authorization: Bearer eyJhbGciOi.JIUzI1.NiJ9", "Authorization: Bearer ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        ('{"Authorization": "Bearer abc"}', '{"Authorization": "Bearer ***"}'),
        ("curl -H 'bearer abc.def-ghi'", "curl -H 'bearer ***'"),
        ("Cookie: session=abc; csrftoken=def", "Cookie: ***"),
        ("posting with xoxb-1234-5678-abcdEFGH done", "posting with xoxb-*** done"),
        ("refresh xoxr-abc and user xoxp-9-9", "refresh xoxr-*** and user xoxp-***"),
        (
            'FATAL:  password authentication failed for user "replicator"',
            'FATAL:  password authentication failed for user "replicator"',
        ),
        ("replication lag 0 bytes on drc-db", "replication lag 0 bytes on drc-db"),
    ],
)
def test_secrets_inside_text_are_masked_by_their_shape(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_known_secret_values_are_masked_wherever_they_appear() -> None:
    text = "pg_basebackup ok; replicator used Tr1cky#Pass in step 3 and Tr1cky#Pass again"
    assert redact_text(text, known_secrets=["Tr1cky#Pass"]) == (
        "pg_basebackup ok; replicator used *** in step 3 and *** again"
    )


def test_a_longer_known_secret_is_masked_whole_before_a_shorter_one_inside_it() -> None:
    assert redact_text("key=abc123xyz", known_secrets=["abc", "abc123xyz"]) == "key=***"


def test_an_empty_known_secret_is_ignored() -> None:
    assert redact_text("nothing to hide", known_secrets=[""]) == "nothing to hide"


def test_strings_inside_structures_are_redacted_including_keys() -> None:
    data = {"cmd": ["psql", "postgresql://u:pw@h/db"], "postgresql://u:pw@h/db": 1}
    assert redact(data, known_secrets=["pw"]) == {
        "cmd": ["psql", "postgresql://u:***@h/db"],
        "postgresql://u:***@h/db": 1,
    }


def test_non_string_values_pass_through_unchanged() -> None:
    data = {"rc": 0, "ok": True, "lag": 0.5, "none": None}
    assert redact(data) == data


def test_redacting_twice_changes_nothing_more() -> None:
    text = 'password=x Authorization: Bearer y {"token": "z"} postgresql://u:p@h xoxb-1'
    assert redact_text(redact_text(text)) == redact_text(text)


secret_values = st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Nd")), min_size=6, max_size=16
)
json_like = st.recursive(
    st.none() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(secret=secret_values, data=json_like, where=st.sampled_from(["value", "key", "inside"]))
def test_a_known_secret_never_survives_redaction(secret: str, data: Any, where: str) -> None:
    planted: Any
    if where == "value":
        planted = {"payload": data, "found": secret}
    elif where == "key":
        planted = {"payload": data, secret: 1}
    else:
        planted = {"payload": data, "stdout": f"connecting as {secret}; done"}
    result = redact(planted, known_secrets=[secret])
    assert secret not in json.dumps(result, ensure_ascii=False)


@given(
    word=st.sampled_from(["password", "token", "api_key", "secret", "credentials"]),
    prefix=st.sampled_from(["", "db_", "slack_", "AWS_", "x-"]),
    value=st.text(min_size=1, max_size=20),
)
def test_any_value_under_a_secret_key_is_masked(word: str, prefix: str, value: str) -> None:
    assert redact({f"{prefix}{word}": value}) == {f"{prefix}{word}": MASK}
