"""The ``sync:`` service behind ``adb push``/``adb pull``: STAT/STA2/LST2, LIST, SEND, RECV, QUIT.

Every path goes through :class:`Sandbox`; a push is written to a temporary file and renamed at DONE, so an
interrupted push never leaves a partial file. ``quota_bytes`` simulates a small disk: a push that would exceed
it fails like a full phone does (``No space left on device``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import tempfile
from pathlib import Path

from .sandbox import Sandbox, SandboxError
from .stream import Stream, StreamClosedError

_REQ = struct.Struct("<4sI")
_STAT1 = struct.Struct("<4sIII")
_STAT2 = struct.Struct("<4sIQQIIIIQqqq")
_DENT = struct.Struct("<4sIIII")
MAX_CHUNK = 64 * 1024
MAX_PATH = 1024


class _SyncFailedError(Exception):
    """A sync request failed; the message goes back to the host in a FAIL reply."""


def _du(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class SyncSession:
    def __init__(self, stream: Stream, sandbox: Sandbox, quota_bytes: int | None) -> None:
        self.stream, self.sandbox, self.quota = stream, sandbox, quota_bytes
        self.out = bytearray()

    def flush(self) -> None:
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            self.stream.send(data)

    def put(self, data: bytes) -> None:
        """Coalesce small replies and DATA chunks into WRTEs of up to the negotiated payload."""
        self.out += data
        if len(self.out) >= self.stream.conn.max_payload:
            self.flush()

    def fail(self, message: str) -> None:
        msg = message.encode()
        self.put(_REQ.pack(b"FAIL", len(msg)) + msg)
        self.flush()

    def serve(self) -> None:
        try:
            while True:
                ident, length = _REQ.unpack(self.stream.read_exact(_REQ.size))
                if ident == b"QUIT":
                    break
                if length > MAX_PATH:
                    self.fail(f"path too long ({length} bytes)")
                    break
                arg = self.stream.read_exact(length).decode("utf-8", "surrogateescape")
                handler = {b"STAT": self.stat1, b"STA2": self.stat2, b"LST2": self.stat2, b"LIST": self.list,
                           b"SEND": self.send, b"RECV": self.recv}.get(ident)
                if handler is None:
                    self.fail(f"unknown sync request {ident!r}")
                    break
                handler(arg, ident)
                self.flush()
        except StreamClosedError:
            return
        finally:
            self.stream.close()

    def _host(self, path: str) -> Path:
        try:
            return self.sandbox.to_host(path)
        except SandboxError as err:
            raise _SyncFailedError(str(err)) from None

    def stat1(self, path: str, _: bytes) -> None:
        try:
            st = os.stat(self._host(path))
            self.put(_STAT1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime)))
        except (OSError, _SyncFailedError):
            self.put(_STAT1.pack(b"STAT", 0, 0, 0))

    def stat2(self, path: str, ident: bytes) -> None:
        try:
            host = self._host(path)
            st = os.lstat(host) if ident == b"LST2" else os.stat(host)
        except _SyncFailedError:
            self.put(_STAT2.pack(ident, errno.EACCES, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            return
        except OSError as err:
            self.put(_STAT2.pack(ident, err.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            return
        self.put(_STAT2.pack(ident, 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink, 0, 0, st.st_size,
                             int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))

    def list(self, path: str, _: bytes) -> None:
        with contextlib.suppress(_SyncFailedError, OSError):
            host = self._host(path)
            for entry in os.scandir(host):
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    name = entry.name.encode("utf-8", "surrogateescape")
                    self.put(_DENT.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name))
                             + name)
        self.put(_DENT.pack(b"DONE", 0, 0, 0, 0))

    def send(self, spec: str, _: bytes) -> None:
        """Receive DATA chunks into a temp file; after DONE rename it into place (or reply FAIL)."""
        path, _, mode_s = spec.rpartition(",")
        error: str | None = None
        tmp: Path | None = None
        fh = None
        try:
            mode = int(mode_s) if mode_s.isdigit() else 0o644
            host = self._host(path)
            if host.is_dir():
                raise _SyncFailedError(f"{path}: is a directory")
            host.parent.mkdir(parents=True, exist_ok=True)  # fixed_push_mkdir
            self._host(path)  # the new parents must not have changed where it points
            fd, name = tempfile.mkstemp(prefix=".sync-", dir=host.parent)
            tmp, fh = Path(name), os.fdopen(fd, "wb")
            used = _du(self.sandbox.root) if self.quota is not None else 0
        except (_SyncFailedError, OSError) as err:
            error = str(err) if isinstance(err, _SyncFailedError) else f"{path}: {err.strerror}"
        written = 0
        try:
            while True:
                ident, length = _REQ.unpack(self.stream.read_exact(_REQ.size))
                if ident == b"DONE":
                    mtime = length
                    break
                if ident != b"DATA" or length > MAX_CHUNK:
                    raise StreamClosedError  # protocol violation: give up on this stream
                data = self.stream.read_exact(length)
                if error is None and fh is not None:
                    written += len(data)
                    if self.quota is not None and used + written > self.quota:
                        error = f"{path}: No space left on device"
                        continue
                    try:
                        fh.write(data)
                    except OSError as err:
                        error = f"{path}: {err.strerror}"
            if error is None and fh is not None and tmp is not None:
                fh.close()
                os.chmod(tmp, stat.S_IMODE(mode) or 0o644)
                os.utime(tmp, (mtime, mtime))
                os.replace(tmp, host)
                tmp = None
        except OSError as err:
            error = f"{path}: {err.strerror}"
        finally:
            if fh is not None and not fh.closed:
                fh.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        if error:
            self.fail(error)
        else:
            self.put(_REQ.pack(b"OKAY", 0))

    def recv(self, path: str, _: bytes) -> None:
        try:
            host = self._host(path)
            with open(host, "rb") as f:
                while chunk := f.read(MAX_CHUNK):
                    self.put(_REQ.pack(b"DATA", len(chunk)) + chunk)
        except _SyncFailedError as err:
            self.fail(str(err))
            return
        except OSError as err:
            self.fail(f"{path}: {err.strerror}")
            return
        self.put(_REQ.pack(b"DONE", 0))
