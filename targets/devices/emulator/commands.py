"""Turn a device shell command into a host ``/bin/sh -c`` script that stays inside the sandbox.

Why rewrite instead of a mount namespace: namespaces need root, and tests run unprivileged. So every word that
is a device path (``/data/...``, ``--model=/data/...``, ``FOO=/data/...``, redirect targets) is mapped into the
sandbox (refusing escapes), ``taskset`` is accepted and dropped (pinning cannot be emulated), and a program at a
command position that is an aarch64 ELF is prefixed with ``qemu-aarch64 -cpu CPU -L SYSROOT``. Command
substitution is refused: its contents could not be rewritten. This confines paths, not a hostile program.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.targets.devices.elf import host_is_aarch64, is_aarch64_elf

from .sandbox import Sandbox, SandboxError

QEMU = "qemu-aarch64"
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
_OPS = frozenset(";&|()<>\n")
_HOST_DEVICES = frozenset({"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/stdin", "/dev/stdout",
                           "/dev/stderr", "/dev/tty"})
_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    value: str  # with quotes removed
    op: bool
    glob: bool  # an unquoted glob character the shell should still expand


def tokenize(script: str) -> list[Token]:
    """Split like sh does, enough to find words and operators with their spans in the original text."""
    tokens: list[Token] = []
    i, n = 0, len(script)
    while i < n:
        c = script[i]
        if c in " \t":
            i += 1
            continue
        if c == "#" and (i == 0 or script[i - 1] in " \t\n;&|"):
            while i < n and script[i] != "\n":
                i += 1
            continue
        if c in _OPS:
            tokens.append(Token(i, i + 1, c, True, False))
            i += 1
            continue
        start, value, glob = i, [], False
        while i < n and script[i] not in " \t" and script[i] not in _OPS:
            c = script[i]
            if c == "`" or script.startswith("$(", i):
                raise SandboxError("command substitution is not supported by the emulated phone")
            if c == "\\":
                value.append(script[i + 1:i + 2])
                i += 2
            elif c == "'":
                j = script.find("'", i + 1)
                if j < 0:
                    raise SandboxError("unterminated quote")
                value.append(script[i + 1:j])
                i = j + 1
            elif c == '"':
                j = i + 1
                while j < n and script[j] != '"':
                    if script[j] == "\\" and j + 1 < n:
                        j += 1
                    elif script[j] == "`" or script.startswith("$(", j):
                        raise SandboxError("command substitution is not supported by the emulated phone")
                    value.append(script[j])
                    j += 1
                if j >= n:
                    raise SandboxError("unterminated quote")
                i = j + 1
            else:
                glob = glob or c in _GLOB
                value.append(c)
                i += 1
        tokens.append(Token(start, i, "".join(value), False, glob))
    return tokens


class CommandRewriter:
    """Rewrites device shell commands for one sandbox; ``qemu_cpu`` is the CPU qemu-aarch64 emulates."""

    def __init__(self, sandbox: Sandbox, qemu_cpu: str) -> None:
        self.sandbox = sandbox
        self.qemu_cpu = qemu_cpu
        self.emulate_aarch64 = not host_is_aarch64()
        self.qemu = shutil.which(QEMU) or QEMU  # absolute: the device PATH holds only the device's tools

    def host_env(self) -> dict[str, str]:
        root = self.sandbox.root
        return {"PATH": str(root / "system/bin"), "HOME": str(root / "data/local/tmp"),
                "TMPDIR": str(root / "data/local/tmp"), "LANG": "C", "LC_ALL": "C"}

    def argv(self, command: str) -> list[str]:
        """``/bin/sh -c`` argv for ``command`` (run with cwd = the sandbox root, the device's ``/``)."""
        return ["/bin/sh", "-c", self.rewrite(command)]

    def _map_path(self, tok: Token, cwd: str) -> str | None:
        """Replacement text for a word holding a device path, or None to keep it as written."""
        value = tok.value
        prefix, path = "", value
        if not value.startswith("/") and "=" in value:
            head, tail = value.split("=", 1)
            if tail.startswith("/") and (head.startswith("-") or head.isidentifier()):
                prefix, path = head + "=", tail
        if not path.startswith("/"):
            if ".." in path.split("/"):
                self.sandbox.device_parts(path, cwd)  # relative, but must not climb out
            return None
        if path in _HOST_DEVICES:
            return None
        host = self.sandbox.to_host(path)
        if tok.glob and not prefix:
            # Keep the glob for the shell: the quoted root, then the device path as written (normalised above).
            self.sandbox.device_parts(path)
            return shlex.quote(str(self.sandbox.root)) + path
        return shlex.quote(prefix + str(host))

    def _program(self, word: str, cwd: str) -> str | None:
        """The qemu prefix for an aarch64 program at a command position, or None."""
        if not self.emulate_aarch64 or "/" not in word:
            return None
        host = self.sandbox.to_host(word, cwd)
        if not is_aarch64_elf(host):
            return None
        return " ".join(shlex.quote(a) for a in (self.qemu, "-cpu", self.qemu_cpu, "-L", AARCH64_SYSROOT, "-E",
                                                  f"LD_LIBRARY_PATH={host.parent}", str(host)))

    def rewrite(self, command: str) -> str:
        tokens = tokenize(command)
        edits: list[tuple[int, int, str]] = []
        cmd_pos, redirect, taskset, cd_next = True, False, "", False
        cwd = "/"
        for tok in tokens:
            if tok.op:
                if tok.value in "<>":
                    redirect = True
                elif tok.value != "&" or not redirect:
                    cmd_pos, taskset, cd_next = True, "", False
                continue
            if redirect:
                redirect = False
                new = self._map_path(tok, cwd)
                if new is not None:
                    edits.append((tok.start, tok.end, new))
                continue
            if taskset:  # `taskset [-a] [-c] MASK cmd ...`: drop options and the mask, keep cmd
                edits.append((tok.start, tok.end, ""))
                if not tok.value.startswith("-"):
                    taskset, cmd_pos = "", True
                continue
            if cmd_pos and tok.value == "taskset":
                edits.append((tok.start, tok.end, ""))
                taskset = "mask"
                continue
            if cmd_pos and "=" in tok.value and tok.value.split("=", 1)[0].isidentifier():
                new = self._map_path(tok, cwd)  # an assignment before the command
                if new is not None:
                    edits.append((tok.start, tok.end, new))
                continue
            if cmd_pos:
                cmd_pos = False
                program = self._program(tok.value, cwd)
                if program is not None:
                    edits.append((tok.start, tok.end, program))
                    continue
                cd_next = tok.value == "cd"
            elif cd_next:
                cd_next = False
                cwd = self.sandbox.normalize(tok.value, cwd)
            new = self._map_path(tok, cwd)
            if new is not None:
                edits.append((tok.start, tok.end, new))
        out = command
        for start, end, text in reversed(edits):
            out = out[:start] + text + out[end:]
        return out


def sandbox_cwd(sandbox: Sandbox) -> Path:
    """Commands start in the device's ``/``."""
    return sandbox.root
