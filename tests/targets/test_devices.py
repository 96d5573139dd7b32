"""The Devices seam: LocalDevice (aarch64 sandbox under qemu), AdbDevice through the real adb, command rewriting."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mobilevit_deploy.cli.main import main
from mobilevit_deploy.targets.devices import AdbDevice, DeviceError, DeviceTimeoutError, LocalDevice, list_adb_devices
from mobilevit_deploy.targets.devices.emulator.commands import CommandRewriter
from mobilevit_deploy.targets.devices.emulator.sandbox import Sandbox, SandboxError
from mobilevit_deploy.targets.devices.emulator.testing import adb_session

HELLO_C = '#include <cstdio>\nint main(int c, char** v) { std::printf("hello %s\\n", v[1]); return 7; }\n'


@pytest.fixture(scope="module")
def aarch64_hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64 cross compiler not installed")
    out = tmp_path_factory.mktemp("hello")
    (out / "hello.cpp").write_text(HELLO_C)
    subprocess.run(["aarch64-linux-gnu-g++", "-O1", "-o", str(out / "hello"), str(out / "hello.cpp")], check=True)
    return out / "hello"


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("devphone")
    with adb_session(base / "root", base / "home") as session:
        yield session


def _exercise(device, tmp_path: Path, hello: Path) -> None:
    """The same checks for every Device implementation."""
    src = tmp_path / "payload.bin"
    src.write_bytes(b"\x00\x01payload" * 1000)
    device.push(src, "/data/local/tmp/t/payload.bin")
    device.pull("/data/local/tmp/t/payload.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    r = device.shell("echo out; echo err >&2; exit 4")
    assert (r.exit_code, r.stdout.strip(), r.stderr.strip()) == (4, "out", "err")
    r = device.shell(["echo", "a b; rm -rf /data", "$HOME"])  # a list is quoted word by word
    assert r.stdout.strip() == "a b; rm -rf /data $HOME"
    device.push(hello, "/data/local/tmp/t/hello")
    r = device.shell("cd /data/local/tmp/t && chmod 755 hello && taskset -c 4-7 ./hello world")
    assert (r.exit_code, r.stdout.strip()) == (7, "hello world")
    r = device.shell(["/data/local/tmp/t/hello", "abs"])
    assert (r.exit_code, r.stdout.strip()) == (7, "hello abs")
    assert device.abi == "arm64-v8a"
    assert device.props()["ro.product.cpu.abi"] == "arm64-v8a"


def test_local_device(tmp_path: Path, aarch64_hello: Path) -> None:
    device = LocalDevice(tmp_path / "local")
    _exercise(device, tmp_path, aarch64_hello)
    with pytest.raises(DeviceError, match="outside the device"):
        device.push(aarch64_hello, "/etc/hello")
    with pytest.raises(DeviceTimeoutError, match="hang"):
        device.shell("sleep 5", timeout=0.5)


def test_adb_device(phone, tmp_path: Path, aarch64_hello: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(phone.server_port))
    monkeypatch.setenv("HOME", phone.env["HOME"])
    device = AdbDevice(phone.serial)
    _exercise(device, tmp_path, aarch64_hello)
    with pytest.raises(DeviceTimeoutError, match="hang"):
        device.shell("sleep 5", timeout=1)
    with pytest.raises(DeviceError):
        device.push(aarch64_hello, "/etc/hello")
    listed = {d.serial: d for d in list_adb_devices()}
    assert listed[phone.serial].state == "device" and listed[phone.serial].model == "mvd_emulated_phone"


def test_mvd_devices_lists_adb_and_local(phone, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(phone.server_port))
    monkeypatch.setenv("HOME", phone.env["HOME"])
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert phone.serial in out and "arm64-v8a" in out and "local" in out


def test_rewriting_maps_device_paths_and_refuses_escapes(tmp_path: Path) -> None:
    LocalDevice(tmp_path)  # lays out the tree
    rw = CommandRewriter(Sandbox(tmp_path), "cortex-a76")
    root = str(tmp_path.resolve())
    assert rw.rewrite("cat /data/x --m=/sdcard/y 2>&1") == f"cat {root}/data/x --m={root}/sdcard/y 2>&1"
    assert rw.rewrite("taskset -a -c 0-3 true") .strip() == "true"
    assert rw.rewrite("cat /dev/null") == "cat /dev/null"
    for bad in ("cat /etc/passwd", "cd /data && cat ../../../etc/passwd", "cat `id`", "echo $(id)", "ls /home"):
        with pytest.raises(SandboxError):
            rw.rewrite(bad)
