"""A small HTTP/1.1 load generator: N keep-alive connections sending prebuilt requests as fast as answers come.

Why not `requests` in threads: on a 2-core machine the client shares the CPU with the server it measures, and
a thread per connection with requests costs about a millisecond of CPU per request, which would be charged to
the server's latency. Here each request is bytes built before the clock starts, written on an asyncio stream,
and the answer is read by its Content-Length: tens of microseconds of client CPU per request.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator


@dataclass
class Answer:
    """One request's fate: HTTP status (0 when the connection failed), body, latency in seconds."""

    index: int
    status: int
    body: bytes
    latency: float
    error: str = ""


@dataclass
class LoadResult:
    answers: list[Answer] = field(default_factory=list)
    wall: float = 0.0


def build_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one POST request on a keep-alive connection."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}",
             "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def run_load(host: str, port: int, requests: Iterable[bytes], concurrency: int, timeout: float = 30.0) -> LoadResult:
    """Send every request over `concurrency` connections; each connection sends its next one when answered."""
    return asyncio.run(_run(host, port, requests, concurrency, timeout))


async def _run(host: str, port: int, requests: Iterable[bytes], concurrency: int, timeout: float) -> LoadResult:
    result = LoadResult()
    work: Iterator[tuple[int, bytes]] = iter(enumerate(requests))
    start = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, work, result.answers, timeout) for _ in range(concurrency)))
    result.wall = time.perf_counter() - start
    result.answers.sort(key=lambda a: a.index)
    return result


async def _connection(host: str, port: int, work: Iterator[tuple[int, bytes]], out: list[Answer],
                      timeout: float) -> None:
    reader = writer = None
    for index, request in work:
        began = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            assert reader is not None
            writer.write(request)
            status, body, keep = await asyncio.wait_for(_read_response(reader), timeout)
            out.append(Answer(index, status, body, time.perf_counter() - began))
            if not keep:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            # No retry: a request the server dropped counts as an error, as GitHub would count it.
            out.append(Answer(index, 0, b"", time.perf_counter() - began, f"{type(exc).__name__}: {exc}"))
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    keep = lines[0].startswith("HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep = value.strip().lower() != "close"
        elif name == "transfer-encoding" and "chunked" in value.lower():
            raise ValueError("chunked answers are not expected from /events")
    body = await reader.readexactly(length) if length else b""
    return status, body, keep
