"""MCP over the process's stdin and stdout on the event loop's own pipes.

The SDK's ``stdio_server`` reads and writes through ``anyio.wrap_file``: each
line read, each write and each flush is a hop to a worker thread, three per
request and answer. A gateway adds its own hop to every call, so it serves
stdio from asyncio pipe transports instead (``connect_read_pipe``,
``connect_write_pipe``): the same messages, the same line framing, no
threads. As the SDK does, it takes the wire away from the rest of the
process while serving: fd 0 reads the null device and fd 1 writes to stderr,
so a stray ``print`` or a child process never corrupts the protocol; both
are restored on exit.

Standard input that is a regular file (``< file``) cannot be a pipe
transport; :func:`stdio_streams` then falls back to the SDK's transport.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
from mcp import types
from mcp.shared.message import SessionMessage

__all__ = ["stdio_streams"]

#: Longest line (one JSON-RPC message) read from stdin.
_MAX_LINE = 64 * 1024 * 1024


def _pipe_like(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[tuple[Any, Any]]:
    """``(read_stream, write_stream)`` of MCP messages over stdin and stdout."""
    if not (_pipe_like(0) and _pipe_like(1)):
        from mcp.server.stdio import stdio_server

        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    sys.stdout.flush()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    reader = asyncio.StreamReader(limit=_MAX_LINE)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0))
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0))
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    incoming_writer, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_lines() -> None:
        async with incoming_writer:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError) as err:  # a line past the limit
                    await incoming_writer.send(err)
                    continue
                if not line:
                    return  # the client closed stdin
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as err:  # the SDK answers a parse error for it
                    await incoming_writer.send(err)
                    continue
                await incoming_writer.send(SessionMessage(message))

    written = anyio.Event()

    async def write_lines() -> None:
        try:
            async with outgoing_reader:
                async for session_message in outgoing_reader:
                    data = session_message.message.model_dump_json(by_alias=True,
                                                                   exclude_unset=True)
                    writer.write(data.encode() + b"\n")
                    await writer.drain()
        finally:
            written.set()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read_lines)
            group.start_soon(write_lines)
            yield incoming, outgoing
            await outgoing.aclose()  # the last answers go out before the wire closes
            with anyio.move_on_after(5):
                await written.wait()
            group.cancel_scope.cancel()
    finally:
        read_transport.close()
        with suppress(Exception):
            await writer.drain()
        write_transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
