"""The ``shell`` services: shell protocol v2 (separate stdout/stderr, exit code) and the legacy merged shell.

A command runs on the host through :class:`CommandRewriter` in its own process group, which is killed when the
host closes the stream (``adb`` interrupted or timed out) or the daemon's command timeout passes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import threading

from .commands import CommandRewriter
from .sandbox import SandboxError
from .stream import Stream, StreamClosedError

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW = range(6)
_PACKET = struct.Struct("<BI")


def parse_service(service: str) -> tuple[bool, dict[str, str], str] | None:
    """``shell,v2,TERM=xterm,raw:CMD`` → (v2, options, CMD); ``shell:CMD`` → (False, {}, CMD); else None."""
    if service.startswith("exec:"):
        return False, {"exec": ""}, service[5:]
    if not service.startswith("shell"):
        return None
    head, sep, command = service.partition(":")
    if not sep or head.split(",")[0] != "shell":
        return None
    opts = {}
    for opt in head.split(",")[1:]:
        key, _, val = opt.partition("=")
        opts[key] = val
    return "v2" in opts, opts, command


def packet(kind: int, data: bytes) -> bytes:
    return _PACKET.pack(kind, len(data)) + data


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def run_shell(stream: Stream, service: str, rewriter: CommandRewriter, timeout: float | None) -> None:
    parsed = parse_service(service)
    if parsed is None:  # the daemon only routes shell services here
        stream.close()
        return
    v2, opts, command = parsed
    stderr_merged = not v2 and "exec" not in opts

    def out(kind: int, data: bytes) -> None:
        stream.send(packet(kind, data) if v2 else data)

    try:
        if not command.strip():
            raise SandboxError("an interactive shell is not supported by the emulated phone; pass a command")
        argv = rewriter.argv(command)
    except SandboxError as err:
        with contextlib.suppress(StreamClosedError, OSError):
            out(ID_STDERR, f"/system/bin/sh: {err}\n".encode())
            if v2:
                out(ID_EXIT, bytes([1]))
        stream.close()
        return
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if stderr_merged else subprocess.PIPE,
                            cwd=rewriter.sandbox.root, env=rewriter.host_env(), start_new_session=True)
    stream.add_close_hook(lambda: _kill_group(proc))
    pumps = [threading.Thread(target=_pump, args=(proc.stdout, ID_STDOUT, out), daemon=True)]
    if not stderr_merged:
        pumps.append(threading.Thread(target=_pump, args=(proc.stderr, ID_STDERR, out), daemon=True))
    feeder = threading.Thread(target=_feed_stdin, args=(stream, proc, v2), daemon=True)
    for t in (*pumps, feeder):
        t.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
    for t in pumps:
        t.join()
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    with contextlib.suppress(StreamClosedError, OSError):
        if v2:
            out(ID_EXIT, bytes([code & 0xFF]))
    stream.close()


def _pump(pipe, kind: int, out) -> None:
    fd = pipe.fileno()
    try:
        while data := os.read(fd, 65536):
            out(kind, data)
    except (StreamClosedError, OSError):
        pass
    finally:
        pipe.close()


def _feed_stdin(stream: Stream, proc: subprocess.Popen, v2: bool) -> None:
    """Host → command: v2 packets (stdin, close-stdin, window size) or raw bytes for the legacy shell."""
    buf = bytearray()
    stdin = proc.stdin
    try:
        while (data := stream.recv()) is not None:
            if not v2:
                if stdin:
                    stdin.write(data)
                    stdin.flush()
                continue
            buf += data
            while len(buf) >= _PACKET.size:
                kind, length = _PACKET.unpack_from(buf)
                if len(buf) < _PACKET.size + length:
                    break
                payload = bytes(buf[_PACKET.size:_PACKET.size + length])
                del buf[:_PACKET.size + length]
                if kind == ID_STDIN and stdin:
                    stdin.write(payload)
                    stdin.flush()
                elif kind == ID_CLOSE_STDIN and stdin:
                    stdin.close()
                    stdin = None
    except (BrokenPipeError, OSError, ValueError):
        pass
    finally:
        if stdin:
            with contextlib.suppress(OSError):
                stdin.close()
