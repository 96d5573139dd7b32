"""The emulated phone against the REAL adb (Debian's 29.0.6): sync, shell v2, isolation and robustness.

One daemon subprocess and one private adb server (own port, own HOME) per module; teardown kills both and checks
nothing is left running.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mobilevit_deploy.targets.devices.emulator import wire
from mobilevit_deploy.targets.devices.emulator.testing import adb_session, processes_mentioning, server_listening


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("phone")
    with adb_session(base / "root", base / "home", quota_bytes=64 << 20) as session:
        yield session
    assert not server_listening(session.server_port), "adb server still running"
    assert session.emulator.proc.poll() is not None, "daemon still running"
    assert processes_mentioning(str(session.root)) == []


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 64 * 1024, 64 * 1024 + 1, 5_000_000])
def test_push_pull_roundtrip_is_identical(phone, tmp_path: Path, size: int) -> None:
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    src.write_bytes(os.urandom(size))
    remote = f"/data/local/tmp/rt/{size}.bin"
    assert phone.adb("push", str(src), remote).returncode == 0
    assert phone.adb("pull", remote, str(back)).returncode == 0
    assert _sha(back) == _sha(src)
    assert (phone.root / f"data/local/tmp/rt/{size}.bin").stat().st_size == size


@pytest.mark.parametrize("code", [0, 3, 255])
def test_shell_exit_codes(phone, code: int) -> None:
    assert phone.adb("shell", f"exit {code}").returncode == code


def test_stdout_and_stderr_kept_apart(phone) -> None:
    proc = phone.adb("shell", "echo to-out; echo to-err >&2", text=True)
    assert proc.stdout.strip() == "to-out"
    assert proc.stderr.strip() == "to-err"


def test_stdin_is_piped(phone) -> None:
    proc = phone.adb("shell", "cat", input=b"hello stdin\n")
    assert proc.stdout == b"hello stdin\n"


def test_getprop(phone) -> None:
    assert phone.adb("shell", "getprop", "ro.product.cpu.abi", text=True).stdout.strip() == "arm64-v8a"
    listing = phone.adb("shell", "getprop", text=True).stdout
    assert "[ro.soc.model]: [" in listing


def test_parallel_shells(phone) -> None:
    results: dict[int, subprocess.CompletedProcess] = {}

    def one(i: int) -> None:
        results[i] = phone.adb("shell", f"sleep 0.3; echo shell-{i}; exit {i}", text=True)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start < 2.4  # they overlapped
    for i, proc in results.items():
        assert (proc.returncode, proc.stdout.strip()) == (i, f"shell-{i}")


@pytest.mark.parametrize("remote", ["/data/../../escaped.txt", "/etc/mvd-escaped.txt", "/tmp/mvd-escaped.txt"])
def test_push_outside_the_device_is_refused(phone, tmp_path: Path, remote: str) -> None:
    src = tmp_path / "x.txt"
    src.write_text("x")
    proc = phone.adb("push", str(src), remote, text=True)
    assert proc.returncode != 0
    assert not Path("/etc/mvd-escaped.txt").exists() and not Path("/tmp/mvd-escaped.txt").exists()
    assert not (phone.root.parent / "escaped.txt").exists()


def test_symlink_escape_is_refused(phone, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    link = phone.root / "data/local/tmp/esc"
    link.symlink_to(outside)
    src = tmp_path / "x.txt"
    src.write_text("x")
    assert phone.adb("push", str(src), "/data/local/tmp/esc/planted").returncode != 0
    assert not (outside / "planted").exists()
    assert phone.adb("pull", "/data/local/tmp/esc/secret", str(tmp_path / "got")).returncode != 0
    assert not (tmp_path / "got").exists()


def test_shell_paths_outside_the_device_are_refused(phone) -> None:
    for cmd in ("cat /etc/passwd", "cat /data/../../etc/passwd", "cat $(echo /etc/passwd)"):
        proc = phone.adb("shell", cmd, text=True)
        assert proc.returncode != 0 and "root:" not in proc.stdout, cmd


def test_full_disk_fails_the_push(phone, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (70 << 20))
    proc = phone.adb("push", str(big), "/data/local/tmp/big.bin", text=True)
    assert proc.returncode != 0 and "No space left on device" in proc.stdout + proc.stderr
    assert not (phone.root / "data/local/tmp/big.bin").exists()


def test_command_killed_when_the_client_goes_away(phone) -> None:
    marker = "31.4159"
    client = subprocess.Popen(["adb", "-s", phone.serial, "shell", f"sleep {marker}"], env=phone.env)
    deadline = time.monotonic() + 10
    while not processes_mentioning(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(marker)
    client.kill()
    client.wait()
    while processes_mentioning(marker) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert processes_mentioning(marker) == []


def _raw_connect(port: int, version: int = wire.VERSION) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    banner = b"host::features=shell_v2\0"
    sock.sendall(wire.encode(wire.Message(wire.A_CNXN, version, 1 << 20, banner), with_checksum=True))
    return sock


def test_handshake_negotiates_version_and_checksums(phone) -> None:
    for version, checked in ((wire.VERSION, False), (wire.VERSION_MIN, True)):
        with _raw_connect(phone.emulator.port, version) as sock:
            msg = wire.read_message(sock, 1 << 20, verify_checksum=checked)
            assert msg.command == wire.A_CNXN and msg.arg0 == version
            assert b"features=" in msg.data and b"shell_v2" in msg.data
            sock.sendall(wire.encode(wire.Message(wire.A_OPEN, 7, 0, b"no-such-service:\0"), checked))
            assert wire.read_message(sock, 1 << 20, checked).command == wire.A_CLSE


@pytest.mark.parametrize("frame", [
    b"\x00" * 24,  # bad magic
    wire.HEADER.pack(wire.A_WRTE, 1, 1, 100, 0, wire.A_WRTE ^ 0xFFFFFFFF) + b"short",  # truncated payload
    wire.HEADER.pack(wire.A_WRTE, 1, 1, 1 << 30, 0, wire.A_WRTE ^ 0xFFFFFFFF),  # oversize
    b"CNXN\x01\x00",  # truncated header
])
def test_malformed_frame_drops_only_that_connection(phone, frame: bytes) -> None:
    with _raw_connect(phone.emulator.port) as sock:
        wire.read_message(sock, 1 << 20, False)
        sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""  # the daemon closed it
    assert phone.adb("shell", "echo still-serving", text=True).stdout.strip() == "still-serving"
