"""The DC's uplink: a TCP relay standing for the network between the DC and everyone else.

``python -m drp.lab.uplink --lab-root R --route LISTEN_PORT:TARGET_PORT ...``

The front door reaches the DC's app, and the DRC's standby reaches the DC's database, through
this relay (the way the psycopg test-suite's proxy cuts connectivity). ``drp lab break
national-network-loss`` kills it: the DC keeps running, but nobody can reach it — exactly the
situation where fencing must not assume the DC is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _handler(target_port: int):
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))

    return handle


async def serve(routes: list[tuple[int, int]]) -> None:
    servers = [
        await asyncio.start_server(_handler(target), "127.0.0.1", listen)
        for listen, target in routes
    ]
    sys.stderr.write(f"uplink relaying {routes}\n")
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DC uplink relay")
    parser.add_argument("--lab-root", default="")
    parser.add_argument("--route", action="append", required=True, help="LISTEN:TARGET")
    args = parser.parse_args(argv)
    routes = [tuple(int(p) for p in r.split(":")) for r in args.route]
    asyncio.run(serve(routes))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
