"""Screenshot a page of the Prefect UI with headless Chromium (Debian's ``chromium``).

``chromium --screenshot`` cannot click, and the run page's tabs (Artifacts, Subflow Runs, ...)
are not reachable by URL, so this drives the browser over the DevTools protocol instead: open
the page, wait for it to render, optionally click the element whose text is ``--click``, save
the PNG. How docs/img/drill-run.png was made::

    .venv/bin/python scripts/ui_screenshot.py http://127.0.0.1:PORT/runs/flow-run/ID \\
        docs/img/drill-run.png --click Artifacts --debug-port 16199
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _page_socket(port: int, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as answer:
                targets = json.load(answer)
            return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        except (OSError, StopIteration, ValueError):
            if time.monotonic() > deadline:
                raise SystemExit(f"chromium's DevTools did not answer on port {port}") from None
            time.sleep(0.2)


async def _shoot(
    socket: str,
    url: str,
    out: str,
    clicks: list[str],
    width: int,
    height: int,
    auth: str | None = None,
) -> None:
    async with websockets.connect(socket, max_size=2**26) as ws:
        counter = 0

        async def call(method: str, **params: Any) -> dict[str, Any]:
            nonlocal counter
            counter += 1
            await ws.send(json.dumps({"id": counter, "method": method, "params": params}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("id") == counter:
                    return message.get("result", {})

        await call("Page.enable")
        await call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        if auth:
            # What the UI's login page does with the credential: it keeps it in localStorage.
            origin = "/".join(url.split("/")[:3])
            await call("Page.navigate", url=f"{origin}/robots.txt")
            await asyncio.sleep(1)
            await call(
                "Runtime.evaluate",
                expression=f"localStorage.setItem('prefect-password', btoa({json.dumps(auth)}))",
            )
        await call("Page.navigate", url=url)
        await asyncio.sleep(8)  # the UI loads its data after the page itself
        for click in clicks:
            found = await call(
                "Runtime.evaluate",
                expression=f"""(() => {{
                    const hits = [...document.querySelectorAll('*')]
                      .filter(e => e.children.length === 0
                        && e.textContent.trim() === {json.dumps(click)});
                    if (!hits.length) return 0;
                    hits[hits.length - 1].click();
                    return hits.length; }})()""",
                returnByValue=True,
            )
            if not found.get("result", {}).get("value"):
                raise SystemExit(f"nothing on the page reads {click!r}")
            await asyncio.sleep(5)
        shot = await call("Page.captureScreenshot", format="png")
        with open(out, "wb") as png:
            png.write(base64.b64decode(shot["data"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument(
        "--click", action="append", default=[], help="text of a tab or button to click (repeatable)"
    )
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--debug-port", type=int, required=True, help="a free loopback port")
    parser.add_argument(
        "--auth-file",
        help="a file holding the server's credential (the lab's .lab/secrets/prefect-api-auth), "
        "given to the UI as its login page does",
    )
    args = parser.parse_args()
    profile = tempfile.mkdtemp(prefix="drp-chromium-")
    browser = subprocess.Popen(
        [
            "chromium",
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={args.width},{args.height}",
            f"--remote-debugging-port={args.debug_port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        socket = _page_socket(args.debug_port)
        auth = Path(args.auth_file).read_text().strip() if args.auth_file else None
        asyncio.run(_shoot(socket, args.url, args.out, args.click, args.width, args.height, auth))
    finally:
        browser.terminate()
        browser.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
