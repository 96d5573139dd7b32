"""The emulated phone: an adbd-speaking TCP server on 127.0.0.1 over a sandbox folder.

Threads, not asyncio: every service blocks on files and subprocesses anyway, and one reader thread per
connection plus one thread per stream keeps adb's per-stream flow control simple. A malformed or truncated frame
drops only its own connection; the listener keeps serving others.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from pathlib import Path

from .commands import CommandRewriter
from .layout import PhoneSpec, prepare_root
from .sandbox import Sandbox
from .shell import parse_service, run_shell
from .stream import Stream
from .sync import SyncSession
from .wire import (
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_WRTE,
    MAX_PAYLOAD,
    VERSION,
    VERSION_MIN,
    FrameError,
    Message,
    encode,
    read_message,
)

log = logging.getLogger("mvd.emulator")
FEATURES = ("shell_v2", "cmd", "stat_v2", "fixed_push_mkdir")


class Connection:
    """One adb host connection: the handshake, stream table and message dispatch."""

    def __init__(self, sock: socket.socket, phone: EmulatedPhone) -> None:
        self.sock, self.phone = sock, phone
        self.version = VERSION
        self.max_payload = MAX_PAYLOAD
        self.connected = False
        self._wlock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._slock = threading.Lock()
        self._ids = itertools.count(1)
        self.thread: threading.Thread | None = None

    @property
    def checksums(self) -> bool:
        return self.connected and self.version < VERSION

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        frame = encode(Message(command, arg0, arg1, data), self.checksums)
        with self._wlock:
            self.sock.sendall(frame)

    def forget(self, local_id: int) -> None:
        with self._slock:
            self._streams.pop(local_id, None)

    def serve(self) -> None:
        try:
            while True:
                self.dispatch(read_message(self.sock, MAX_PAYLOAD, self.checksums))
        except EOFError:
            pass
        except FrameError as err:
            log.warning("dropping connection: %s", err)
        except OSError:
            pass
        finally:
            with self._slock:
                streams, self._streams = list(self._streams.values()), {}
            for s in streams:
                s.on_close()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.phone._forget(self)

    def dispatch(self, msg: Message) -> None:
        if msg.command == A_CNXN:
            self.version = max(VERSION_MIN, min(msg.arg0, VERSION))
            self.max_payload = max(4096, min(msg.arg1, MAX_PAYLOAD))
            self.connected = True
            self.send(A_CNXN, self.version, MAX_PAYLOAD, self.phone.banner())
            return
        if not self.connected:
            return  # AUTH and anything before CNXN: ignored (no authentication)
        if msg.command == A_OPEN:
            self._open(msg.arg0, msg.data.rstrip(b"\0").decode("utf-8", "replace"))
            return
        with self._slock:
            stream = self._streams.get(msg.arg1)
        if stream is None or stream.remote_id != msg.arg0:
            return  # unknown ids: ignore, never answer CLSE with CLSE
        if msg.command == A_OKAY:
            stream.on_okay()
        elif msg.command == A_WRTE:
            self.send(A_OKAY, stream.local_id, stream.remote_id)
            stream.on_data(msg.data)
        elif msg.command == A_CLSE:
            self.forget(stream.local_id)
            stream.on_close()

    def _open(self, remote_id: int, service: str) -> None:
        target = self.phone.service(service)
        if target is None or remote_id == 0:
            self.send(A_CLSE, 0, remote_id)
            return
        local_id = next(self._ids)
        stream = Stream(self, local_id, remote_id)
        with self._slock:
            self._streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        threading.Thread(target=self._run, args=(target, stream), daemon=True, name=f"adb-{service[:20]}").start()

    @staticmethod
    def _run(target, stream: Stream) -> None:
        try:
            target(stream)
        except Exception:  # a bug in one service must not take the connection down
            log.exception("service failed")
            stream.close()


class EmulatedPhone:
    """An emulated phone listening on 127.0.0.1:``port`` (0 picks a free one) over the sandbox ``root``.

    ``start()`` serves from a background thread (for tests and in-process use); ``serve_forever()`` blocks.
    """

    def __init__(self, root: str | Path, port: int = 0, spec: PhoneSpec | None = None,
                 command_timeout: float | None = 3600, quota_bytes: int | None = None) -> None:
        self.spec = spec or PhoneSpec()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        prepare_root(self.root, self.spec)
        self.sandbox = Sandbox(self.root)
        self.rewriter = CommandRewriter(self.sandbox, self.spec.cpu)
        self.command_timeout = command_timeout
        self.quota_bytes = quota_bytes
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self._conns: set[Connection] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def banner(self) -> bytes:
        p = self.spec.props()
        ident = ";".join(f"{k}={p[k]}" for k in ("ro.product.name", "ro.product.model", "ro.product.device"))
        return f"device::{ident};features={','.join(FEATURES)}".encode()

    def service(self, name: str):
        if name.startswith(("shell", "exec:")) and parse_service(name) is not None:
            return lambda s: run_shell(s, name, self.rewriter, self.command_timeout)
        if name == "sync:":
            return lambda s: SyncSession(s, self.sandbox, self.quota_bytes).serve()
        return None

    def serve_forever(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, self)
            conn.thread = threading.Thread(target=conn.serve, daemon=True, name="adb-conn")
            with self._lock:
                self._conns.add(conn)
            conn.thread.start()

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def start(self) -> EmulatedPhone:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="adb-listener")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, drop every connection (which kills running commands)."""
        self._stopped.set()
        if self._thread:
            self._thread.join(5)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)
        for c in conns:  # their teardown kills the commands still running
            if c.thread is not None:
                c.thread.join(5)

    def __enter__(self) -> EmulatedPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
