"""TVM RPC for tuning on a device: the tracker address, a reachability check, and a loopback tracker + server.

MetaSchedule measures aarch64 candidates on the device itself: each candidate is cross-compiled here into a
``.so`` (``aarch64-linux-gnu-g++``), uploaded through an RPC session, loaded and timed by the device's RPC
server. ``ms.runner.RPCRunner`` only talks to servers **through a tracker**, which hands out free servers by key
(one key per kind of device, several devices may share it).

Running the RPC server on a device (use the same TVM version as here, 0.27):

* **Tracker** (on this machine, once)::

      python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190
      python -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port 9190   # lists the connected servers

* **Linux aarch64 board** (Raspberry Pi, Jetson, an ARM server): ``pip install apache-tvm==0.27.0.post1
  apache-tvm-ffi==0.1.14.post1`` (the aarch64 wheels exist), then::

      python -m tvm.exec.rpc_server --tracker WORKSTATION:9190 --key rpi5 --host 0.0.0.0 --port 9090

  The board must reach the tracker, and this machine must reach the board's port 9090.

* **Android phone**: the RPC server is the C++ ``tvm_rpc`` program of TVM's ``apps/cpp_rpc``, cross-built with
  the NDK against the same TVM version (``cmake -DCMAKE_TOOLCHAIN_FILE=$ANDROID_NDK_HOME/build/cmake/
  android.toolchain.cmake -DANDROID_ABI=arm64-v8a -DANDROID_PLATFORM=android-24 -DUSE_CPP_RPC=ON``; see
  ``shared/reference/arm_runtimes.md``). Over USB, route both directions through adb::

      adb reverse tcp:9190 tcp:9190          # the phone reaches the tracker at its own 127.0.0.1:9190
      adb forward tcp:9090 tcp:9090          # this machine reaches the phone's server at 127.0.0.1:9090
      adb push tvm_rpc libtvm_runtime.so /data/local/tmp/
      adb shell 'cd /data/local/tmp && LD_LIBRARY_PATH=. ./tvm_rpc server --tracker=127.0.0.1:9190 \\
                 --key=pixel7 --port=9090 --port-end=9091 --custom-addr=127.0.0.1'

  Then ``mvd tune MODEL --target tvm --arch aarch64 --cpu cortex-a76 --rpc-tracker 127.0.0.1:9190 --rpc-key
  pixel7``. Pin the server to the big cores (``taskset``) for stable numbers. Candidates are linked here with
  the glibc cross compiler; they need only libc/libm, which bionic provides (an ``--ndk`` tuning mode would
  link with the NDK instead; not built yet).

Only the loopback path (tracker and Python server on 127.0.0.1, host target) is tested on this machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mobilevit_deploy.errors import DeployError

DEFAULT_TRACKER_PORT = 9190
SESSION_TIMEOUT_SEC = 60  # one candidate's upload + load + timing; a phone over adb is slow to upload


@dataclass(frozen=True)
class RpcTracker:
    """Where MetaSchedule asks for a device: the tracker's address and the device key."""

    host: str
    port: int
    key: str

    @classmethod
    def parse(cls, address: str, key: str | None) -> RpcTracker:
        """``HOST:PORT`` (port defaults to 9190) and a key; a malformed value raises ``DeployError``."""
        if not key:
            raise DeployError("--rpc-tracker needs --rpc-key KEY (the key the device's RPC server registered)")
        host, _, port = address.rpartition(":") if ":" in address else (address, "", str(DEFAULT_TRACKER_PORT))
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise DeployError(f"bad RPC tracker address '{address}'", hint="write it as HOST:PORT, e.g. 127.0.0.1:9190")
        return cls(host, int(port), key)

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (key {self.key})"

    def summary(self, timeout: float = 5.0) -> dict[str, Any]:
        """The tracker's summary (queue and servers); ``DeployError`` at once if it is unreachable.

        TVM's own client retries for 60 s on a refused connection; a wrong address should fail in seconds.
        """
        from tvm.rpc import base

        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
                if struct.unpack("<i", base.recvall(sock, 4))[0] != base.RPC_TRACKER_MAGIC:
                    raise DeployError(f"{self.host}:{self.port} answers but is not a TVM RPC tracker")
                base.sendjson(sock, [base.TrackerCode.SUMMARY])
                code, summary = base.recvjson(sock)
        except (OSError, RuntimeError) as err:
            raise DeployError(f"cannot reach the RPC tracker at {self.host}:{self.port} ({err})",
                              hint="start it with `python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port "
                              f"{self.port}` (see targets/tvm_rpc.py)") from None
        if code != base.TrackerCode.SUCCESS:
            raise DeployError(f"the RPC tracker at {self.host}:{self.port} refused a summary request")
        return summary

    def free_servers(self, timeout: float = 5.0) -> int:
        """How many servers with our key are free now (0 when the key is unknown to the tracker)."""
        queue = self.summary(timeout).get("queue_info", {})
        return int(queue.get(self.key, {}).get("free", 0))

    def check(self, timeout: float = 5.0) -> None:
        """Fail fast when no device with our key is connected, naming the keys that are."""
        queue = self.summary(timeout).get("queue_info", {})
        if self.key not in queue:
            known = ", ".join(sorted(queue)) or "none"
            raise DeployError(f"no RPC server with key '{self.key}' is registered at the tracker {self.host}:"
                              f"{self.port} (keys there: {known})",
                              hint="start the device's RPC server with this key (see targets/tvm_rpc.py)")

    def rpc_config(self) -> Any:
        from tvm.s_tir import meta_schedule as ms

        return ms.runner.RPCConfig(tracker_host=self.host, tracker_port=self.port, tracker_key=self.key,
                                   session_priority=1, session_timeout_sec=SESSION_TIMEOUT_SEC)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    """A child in its own process group, so stopping it also stops the per-session workers it forks."""
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def loopback_rpc(key: str = "local", servers: int = 1, ready_timeout: float = 180.0) -> Iterator[RpcTracker]:
    """A tracker and ``servers`` Python RPC servers on 127.0.0.1 (free ports), stopped on exit.

    For tests and for trying the RPC path without a device; the servers measure on this machine.
    """
    tracker_port = free_port()
    procs = [_spawn(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tracker_port),
                     "--port-end", str(tracker_port + 1), "--silent"])]
    try:
        tracker = RpcTracker("127.0.0.1", tracker_port, key)
        for _ in range(servers):
            port = free_port()
            procs.append(_spawn(["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port), "--port-end",
                                 str(port + 1), "--tracker", f"127.0.0.1:{tracker_port}", "--key", key]))
        deadline = time.monotonic() + ready_timeout
        while True:  # each child imports TVM first (seconds to a minute on a busy machine)
            dead = [p.args for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"RPC helper exited early: {dead[0]}")
            with contextlib.suppress(DeployError):
                if tracker.free_servers(timeout=2.0) >= servers:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the loopback RPC server did not register within {ready_timeout:.0f} s")
            time.sleep(0.5)
        yield tracker
    finally:
        for proc in reversed(procs):
            _stop(proc)
