"""A minimal asyncio HTTP/1.1 keep-alive client, so the load generator costs little of the shared cores."""

from __future__ import annotations

import asyncio
import json
import uuid

__all__ = ["Conn", "multipart_post"]


def _header_lines(headers: dict[str, str] | None) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())


def multipart_post(
    path: str, host: str, fields: dict[str, str], file_name: str, file_bytes: bytes,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A complete POST request (headers + multipart body), built once and sent many times."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + file_bytes
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    body = b"".join(parts)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n{_header_lines(headers)}\r\n"
    ).encode()
    return head + body


class Conn:
    """One keep-alive connection; requests on it are sequential."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self.extra = _header_lines(headers)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send a prebuilt request; returns (status, body)."""
        assert self.reader and self.writer
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body

    async def get_json(self, path: str) -> tuple[int, dict]:
        status, body = await self.send(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}\r\n".encode())
        return status, json.loads(body)

    async def close(self) -> None:
        if self.writer:
            self.writer.close()
            await self.writer.wait_closed()
