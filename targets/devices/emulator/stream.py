"""One adb stream (an OPENed service) with adb's flow control: after each WRTE wait for the host's OKAY."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from .wire import A_CLSE, A_WRTE


class StreamClosedError(Exception):
    """The host closed the stream (or the connection went away)."""


class _Conn(Protocol):
    max_payload: int

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None: ...

    def forget(self, local_id: int) -> None: ...


class Stream:
    def __init__(self, conn: _Conn, local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self._cond = threading.Condition()
        self._ready = True
        self._closed = False
        self._inbox: deque[bytes] = deque()
        self._rbuf = bytearray()
        self._on_close: list[Callable[[], None]] = []

    # -------------------------------------------------------------- called by the connection's reader thread
    def on_okay(self) -> None:
        with self._cond:
            self._ready = True
            self._cond.notify_all()

    def on_data(self, data: bytes) -> None:
        with self._cond:
            self._inbox.append(data)
            self._cond.notify_all()

    def on_close(self) -> None:
        """The host closed the stream: wake everyone and run the close hooks (which kill processes)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            hooks = list(self._on_close)
        for hook in hooks:
            hook()

    # -------------------------------------------------------------- used by the service thread
    @property
    def closed(self) -> bool:
        return self._closed

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        with self._cond:
            self._on_close.append(hook)
            closed = self._closed
        if closed:
            hook()

    def recv(self) -> bytes | None:
        """Next WRTE payload from the host, or None once the stream is closed and drained."""
        with self._cond:
            while not self._inbox and not self._closed:
                self._cond.wait()
            return self._inbox.popleft() if self._inbox else None

    def read_exact(self, n: int) -> bytes:
        while len(self._rbuf) < n:
            data = self.recv()
            if data is None:
                raise StreamClosedError
            self._rbuf += data
        out = bytes(self._rbuf[:n])
        del self._rbuf[:n]
        return out

    def send(self, data: bytes) -> None:
        """WRTE ``data`` in chunks of at most the negotiated payload, each after the previous one's OKAY."""
        step = self.conn.max_payload
        for off in range(0, len(data), step):
            with self._cond:
                while not self._ready and not self._closed:
                    self._cond.wait()
                if self._closed:
                    raise StreamClosedError
                self._ready = False
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[off:off + step])

    def close(self) -> None:
        """Close from our side; never answers a host's CLSE with another CLSE."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self.conn.forget(self.local_id)
        with contextlib.suppress(OSError):
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
