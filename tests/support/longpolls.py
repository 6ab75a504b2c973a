"""A long-poll load generator in its own process: many concurrent ``GET /v1/jobs/{id}?wait=N`` on raw sockets.

``python -m tests.support.longpolls <api url> <polls> <wait> <job id>...`` prints ``ready`` once every
request is written, then one JSON line: per poll ``[http status, job status, answered at (epoch s)]``.
Raw asyncio streams keep the client's own CPU small, so the API, not the client, is what is measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _poll(host: str, port: int, job_id: str, wait: float, written: asyncio.Queue) -> list:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /v1/jobs/{job_id}?wait={wait:g} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
    except OSError as exc:
        written.put_nowait(1)
        return [0, type(exc).__name__, time.time()]
    written.put_nowait(1)
    try:
        raw = await reader.read()
    except OSError as exc:
        return [0, type(exc).__name__, time.time()]
    finally:
        writer.close()
    answered = time.time()
    head, _, body = raw.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    try:
        status = json.loads(body).get("status") if code == 200 else None
    except ValueError:
        status = None
    return [code, status, answered]


async def main(url: str, polls: int, wait: float, ids: list[str]) -> None:
    parts = urlsplit(url)
    written: asyncio.Queue = asyncio.Queue()
    tasks = [asyncio.create_task(_poll(parts.hostname, parts.port, ids[i % len(ids)], wait, written)) for i in range(polls)]
    for _ in range(polls):
        await written.get()
    print("ready", flush=True)
    results = await asyncio.gather(*tasks)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]))
