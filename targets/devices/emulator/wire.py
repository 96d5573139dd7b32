"""adb wire framing: the 24-byte message header, checksums and version negotiation.

Kept apart from the daemon so that a malformed frame is one exception type (:class:`FrameError`) the
connection handler turns into "drop this connection", never into a crashed server.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
COMMANDS = frozenset({A_SYNC, A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE})

VERSION = 0x01000001  # from this version on, checksums are skipped
VERSION_MIN = 0x01000000
MAX_PAYLOAD = 1 << 20  # what we announce; the host uses the smaller of both sides
HEADER = struct.Struct("<6I")


class FrameError(Exception):
    """A frame that does not follow the protocol (bad magic, unknown command, oversize, checksum, truncated)."""


@dataclass(frozen=True)
class Message:
    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return self.command.to_bytes(4, "little").decode("ascii", "replace")


def checksum(data: bytes) -> int:
    """adb's pre-0x01000001 checksum: the byte sum."""
    return sum(data) & 0xFFFFFFFF


def encode(msg: Message, with_checksum: bool) -> bytes:
    check = checksum(msg.data) if with_checksum else 0
    header = HEADER.pack(msg.command, msg.arg0, msg.arg1, len(msg.data), check, msg.command ^ 0xFFFFFFFF)
    return header + msg.data


def recv_exact(sock: socket.socket, n: int, *, started: bool = True) -> bytes:
    """Read exactly ``n`` bytes; EOF before the first byte of a frame is EOFError, inside one a FrameError."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if not buf and not started:
                raise EOFError
            raise FrameError(f"truncated frame: got {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket, max_payload: int, verify_checksum: bool) -> Message:
    """Read one message or raise FrameError (malformed) / EOFError (clean close between frames)."""
    command, arg0, arg1, length, check, magic = HEADER.unpack(recv_exact(sock, HEADER.size, started=False))
    if magic != command ^ 0xFFFFFFFF:
        raise FrameError(f"bad magic {magic:#x} for command {command:#x}")
    if command not in COMMANDS:
        raise FrameError(f"unknown command {command:#x}")
    if length > max_payload:
        raise FrameError(f"payload of {length} bytes exceeds the maximum {max_payload}")
    data = recv_exact(sock, length) if length else b""
    if verify_checksum and checksum(data) != check:
        raise FrameError("checksum mismatch")
    return Message(command, arg0, arg1, data)
