"""Compile the ``org.mobilevitdeploy.seg`` Java classes into ``mvdseg.jar`` with the JDK, cached by content.

The classes target Java 8 bytecode (``--release 8``), which every Android Gradle plugin's D8 accepts.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from mobilevit_deploy.targets import runner_build as rb

from .build import JAVA, AppBackendError

JAR = "mvdseg.jar"
JAVA_RELEASE = "8"


def java_sources() -> list[Path]:
    return sorted(JAVA.rglob("*.java"))


def jdk_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AppBackendError(f"the JDK tool '{name}' is not on PATH", hint="apt-get install openjdk-17-jdk-headless")
    return path


def build_jar() -> Path:
    """``mvdseg.jar`` holding MvdSegmenter and MvdException; compiled once per source/JDK version."""
    javac, jar = jdk_tool("javac"), jdk_tool("jar")
    version = subprocess.run([javac, "-version"], capture_output=True, text=True, check=False)
    key = hashlib.sha256((version.stdout + version.stderr + JAVA_RELEASE).encode())
    for src in java_sources():
        key.update(str(src.relative_to(JAVA)).encode() + b"\0" + src.read_bytes())
    out = rb.cache_dir() / "app_backend" / f"jar-{key.hexdigest()[:16]}"
    if (out / JAR).exists():
        return out / JAR
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mvd-jar-", dir=out.parent) as tmp:
        classes = Path(tmp) / "classes"
        for cmd, what in (
            ([javac, "--release", JAVA_RELEASE, "-Xlint:-options", "-d", str(classes), *map(str, java_sources())],
             "javac"),
            ([jar, "cf", str(Path(tmp) / JAR), "-C", str(classes), "."], "jar"),
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise AppBackendError(f"{what} failed on the MvdSegmenter sources:\n{proc.stderr.strip()[:2000]}")
        staged = Path(tmp) / "out"
        staged.mkdir()
        shutil.move(str(Path(tmp) / JAR), staged / JAR)
        try:
            staged.rename(out)
        except OSError:  # another process built the same jar first
            if not (out / JAR).exists():
                raise
    return out / JAR
