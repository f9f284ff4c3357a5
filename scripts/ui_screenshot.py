"""Screenshot a Prefect UI page in headless Chromium (Debian's ``chromium``), optionally after
clicking buttons by their text — e.g. a paused run's page with its approval form open:

    .venv/bin/python scripts/ui_screenshot.py http://127.0.0.1:PORT/runs/flow-run/ID \\
        docs/img/approval-form.png --click Resume

The page needs JavaScript, so Chromium is driven over the DevTools protocol (``websockets``, a
dependency of Prefect) rather than with ``--screenshot``. Exit 1 when a button is not found.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from websockets.sync.client import connect


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--click", action="append", default=[], help="button text to click")
    parser.add_argument("--port", type=int, default=15700, help="DevTools port (loopback)")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds for the page to load")
    args = parser.parse_args()
    profile = tempfile.mkdtemp(prefix="drp-chromium-")
    browser = subprocess.Popen(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={args.port}",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        page = _page(args.port)
        with connect(page["webSocketDebuggerUrl"], max_size=50_000_000) as ws:
            counter = iter(range(1, 1_000_000))

            def call(method: str, **params: Any) -> dict[str, Any]:
                ident = next(counter)
                ws.send(json.dumps({"id": ident, "method": method, "params": params}))
                while True:
                    message = json.loads(ws.recv())
                    if message.get("id") == ident:
                        return message.get("result", message)

            call(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            call("Page.navigate", url=args.url)
            time.sleep(args.wait)
            for text in args.click:
                script = (
                    "(() => { const b = [...document.querySelectorAll('button')]"
                    f".find(b => b.innerText.trim() === {json.dumps(text)});"
                    " if (!b) return false; b.click(); return true; })()"
                )
                found = call("Runtime.evaluate", expression=script, returnByValue=True)
                if not found["result"].get("value"):
                    print(f"no button {text!r} on {args.url}", file=sys.stderr)
                    return 1
                time.sleep(4)
            shot = call("Page.captureScreenshot", format="png")
            with open(args.out, "wb") as fh:
                fh.write(base64.b64decode(shot["data"]))
        print(f"saved {args.out}")
        return 0
    finally:
        browser.terminate()
        browser.wait(timeout=10)


def _page(port: int) -> dict[str, Any]:
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                targets = json.load(r)
            return next(t for t in targets if t["type"] == "page")
        except (OSError, StopIteration, ValueError):
            time.sleep(0.2)
    raise SystemExit(f"chromium's DevTools did not answer on port {port}")


if __name__ == "__main__":
    sys.exit(main())
