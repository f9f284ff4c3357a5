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


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float = 0.0
) -> None:
    if delay_s > 0:
        return await _delayed_pipe(reader, writer, delay_s)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _delayed_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float
) -> None:
    """Each chunk leaves ``delay_s`` after it arrived, in order: a long link's one-way latency
    (for benchmarks of checks across sites), without holding back what follows it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + delay_s, data))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        queue.put_nowait((loop.time() + delay_s, b""))

    async def write() -> None:
        try:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    return
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    await asyncio.gather(read(), write())


def _handler(target_port: int, delay_s: float = 0.0):
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, up_w, delay_s), _pipe(up_r, client_w, delay_s))

    return handle


async def serve(routes: list[tuple[int, int]], delay_s: float = 0.0) -> None:
    servers = [
        await asyncio.start_server(_handler(target, delay_s), "127.0.0.1", listen)
        for listen, target in routes
    ]
    sys.stderr.write(f"uplink relaying {routes}\n")
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DC uplink relay")
    parser.add_argument("--lab-root", default="")
    parser.add_argument("--route", action="append", required=True, help="LISTEN:TARGET")
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="one-way latency added to every chunk"
    )
    args = parser.parse_args(argv)
    routes = [tuple(int(p) for p in r.split(":")) for r in args.route]
    asyncio.run(serve(routes, args.delay_ms / 1000.0))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
