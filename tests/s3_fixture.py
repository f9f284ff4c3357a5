"""A real S3 endpoint over HTTP for tests: moto's server mode on loopback, boto3 pointed at it.

Import the fixture into a test module (``from s3_fixture import s3_endpoint``). Each importing
module gets its own fixture definition, so the server itself is kept here, once per process and
shared by reference count: started by the first user, stopped after the last. It listens on
``DRP_TEST_PORT_BASE + 800`` (tests/conftest.py lists the ranges). The stand-in is allowed
because S3 is an internet service: boto3 still speaks the real protocol to it (signed requests,
multipart uploads with checksums, versioning, Object Lock).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

S3_PORT = int(os.environ.get("DRP_TEST_PORT_BASE", "26400")) + 800
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "drp-test-access-key",
    "AWS_SECRET_ACCESS_KEY": "drp-test-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}

_lock = threading.Lock()
_state: dict[str, Any] = {"users": 0, "server": None, "saved": {}}


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _acquire() -> str:
    from moto.server import ThreadedMotoServer

    with _lock:
        if _state["users"] == 0:
            if _port_taken(S3_PORT):
                raise RuntimeError(
                    f"port {S3_PORT} (DRP_TEST_PORT_BASE + 800) is already in use: another "
                    "process holds it; set DRP_TEST_PORT_BASE to a free range"
                )
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            _state["saved"] = {name: os.environ.get(name) for name in CREDENTIALS}
            os.environ.update(CREDENTIALS)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
            server.start()
            _state["server"] = server
        _state["users"] += 1
    return f"http://127.0.0.1:{S3_PORT}"


def _release() -> None:
    with _lock:
        _state["users"] -= 1
        if _state["users"] > 0:
            return
        _state["server"].stop()
        _state["server"] = None
        for name, value in _state["saved"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a running moto S3 server; AWS_* credentials set for boto3 meanwhile."""
    url = _acquire()
    try:
        yield url
    finally:
        _release()
