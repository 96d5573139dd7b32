"""``build_app_backend``: put libmvdseg, the Java class and an integration note into a bundle's ``app/`` folder.

Layout added to the bundle (metadata.json and the artifact are untouched, so the bundle still verifies)::

    app/INTEGRATION.md         Gradle snippet, System.loadLibrary, which files go into the APK
    app/mvdseg.jar             org.mobilevitdeploy.seg.MvdSegmenter + MvdException
    app/include/mvdseg.h       the C API
    app/lib/<arch>/            libmvdseg.so, libmvdseg_jni.so, the runtime libraries, mvdseg_driver
    app/manifest.json          what was built, for which runtime and arch, with sha256 of every file

Each arch folder is written atomically; building a second arch adds its folder next to the first.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.bundle import load_bundle
from mobilevit_deploy.bundle.checksums import describe_files

from .build import NATIVE, AppBackendError, AppLibrary, build_app_library
from .jar import JAR, build_jar

APP = "app"
ANDROID_ABI = {"android-arm64": "arm64-v8a"}


@dataclass(frozen=True)
class AppBackend:
    """The ``app/`` folder of a bundle after a build."""

    folder: Path
    arch: str
    runtime: str
    library: AppLibrary

    @property
    def lib_dir(self) -> Path:
        return self.folder / "lib" / self.arch

    @property
    def jar(self) -> Path:
        return self.folder / JAR

    @property
    def note(self) -> Path:
        return self.folder / "INTEGRATION.md"


def build_app_backend(bundle_dir: str | Path, arch: str | None = None) -> AppBackend:
    """Build the app backend for the bundle's runtime on ``arch`` (default: the bundle's own) into ``app/``."""
    bundle = load_bundle(bundle_dir)
    if bundle.runtime not in ("executorch", "tvm"):
        raise AppBackendError(f"bundle {bundle.root} runs on {bundle.runtime}, which has no app backend",
                              hint="compile it with --target executorch (or tvm)")
    arch = arch or bundle.arch
    if bundle.runtime == "tvm" and arch != bundle.arch:
        raise AppBackendError(f"bundle {bundle.root} holds a TVM library compiled for {bundle.arch}, not {arch}",
                              hint=f"compile the bundle with --arch {arch}, or use --target executorch (portable)")
    library = build_app_library(bundle.runtime, arch)
    jar = build_jar()
    app = bundle.root / APP
    app.mkdir(exist_ok=True)
    with atomic_path(app / "lib" / arch, directory=True) as tmp:
        for path in (*library.shared_libraries, library.driver):
            shutil.copy2(path, tmp / path.name)
    for source, name in ((jar, JAR), (NATIVE / "mvdseg.h", "include/mvdseg.h")):
        with atomic_path(app / name) as tmp:
            shutil.copyfile(source, tmp)
    with atomic_path(app / "INTEGRATION.md") as tmp:
        tmp.write_text(integration_note(bundle.metadata, sorted(p.name for p in (app / "lib").iterdir())))
    _write_manifest(app, bundle.runtime)
    return AppBackend(app, arch, bundle.runtime, library)


def _write_manifest(app: Path, runtime: str) -> None:
    files = sorted(str(p.relative_to(app)) for p in app.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {"runtime": runtime, "arches": sorted(p.name for p in (app / "lib").iterdir()),
                "files": describe_files(app, files)}
    with atomic_path(app / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")


def integration_note(metadata: dict, arches: list[str]) -> str:
    """The app developer's page: what to copy where, the Gradle lines and the Java calls, for this bundle."""
    model, target = metadata["model"]["name"], metadata["target"]
    artifact, runtime = target["artifact"], target["runtime"]
    size = metadata["input"]["shape"][2:]
    classes = metadata["output"]["shape"][1]
    tvm_note = ("\n\nA TVM bundle's `model.so` is machine code: compile the bundle for the phone's arch, and note that "
                "loading it from app storage has not been tried on a device yet." if runtime == "tvm" else "")
    lib_rows = "\n".join(f"| `app/lib/{a}/*.so` | `app/src/main/jniLibs/{ANDROID_ABI[a]}/` |"
                         for a in arches if a in ANDROID_ABI)
    if not lib_rows:
        lib_rows = ("| `app/lib/android-arm64/*.so` (build it: `build_app_backend(bundle, 'android-arm64')` "
                    "with `ANDROID_NDK_HOME` and `MVD_ANDROID_RUNTIME_LIBS` set) | `app/src/main/jniLibs/arm64-v8a/` |")
    return f"""# Using this bundle in an Android app

Model `{model}` ({classes} classes, input {size[0]}x{size[1]}), runtime {runtime}. Built here: {", ".join(arches)}.
libmvdseg resizes and normalises each frame, runs `{artifact}`, upsamples the logits and takes the argmax
exactly as `mvd eval` does, so the app's label maps equal the Python pipeline's.

## Files

| from this bundle | into the Android project |
|---|---|
| `app/mvdseg.jar` | `app/libs/mvdseg.jar` |
{lib_rows}
| `metadata.json`, `{artifact}` | `app/src/main/assets/{model}/` |

Only `metadata.json` and `{artifact}` are needed at run time (`runner/` and `reference/` are for `mvd verify`).
The library checks `{artifact}` against the sha256 in `metadata.json` when it opens the folder.

## Gradle (module `build.gradle`)

```groovy
android {{
    defaultConfig {{ ndk {{ abiFilters 'arm64-v8a' }} }}
    androidResources {{ noCompress 'pte', 'so', 'json' }}  // assets stored byte for byte
}}
dependencies {{
    implementation files('libs/mvdseg.jar')
}}
```

## Java

`MvdSegmenter.open` calls `System.loadLibrary("mvdseg_jni")` itself; `libmvdseg_jni.so` finds `libmvdseg.so` and
the runtime libraries next to it in the APK's native library folder. The library needs a real folder, so copy the
assets to app storage once:

```java
File dir = new File(getFilesDir(), "{model}");
copyAssetFolder(getAssets(), "{model}", dir);   // your helper: metadata.json + {artifact}, once per app version
try (MvdSegmenter seg = MvdSegmenter.open(dir.getPath(), 4)) {{   // one instance per thread
    byte[] labels = new byte[width * height];            // reuse across frames
    byte[] colors = new byte[width * height * 4];        // or null if you only need labels
    MvdSegmenter.Timings t = seg.segmentNv21(nv21, width, height, width, labels, colors);
    Bitmap overlay = Bitmap.createBitmap(width, height, Bitmap.Config.ARGB_8888);
    overlay.copyPixelsFromBuffer(ByteBuffer.wrap(colors)); // RGBA bytes = ARGB_8888 in memory
}} catch (MvdException e) {{
    Log.e("mvd", e.getMessage());                         // e.g. "MVD_ERR_BUNDLE_MODIFIED: ..."
}}
```

Frames: RGBA8888 (`segmentRgba`, stride = bytes per row) or NV21 (`segmentNv21`, even width and height), at most
4096 on a side. `labels[y * width + x] & 0xFF` is the class of pixel (x, y) (Java bytes are signed);
`seg.className(i)` names it.{tvm_note}

## C

`app/include/mvdseg.h`: `mvd_open`, `mvd_segment_rgba` / `mvd_segment_nv21`, `mvd_close`; every call returns a
status and `mvd_last_error(handle)` says what to do. `app/lib/<arch>/mvdseg_driver` is a small C program over the
same API (`mvdseg_driver BUNDLE FRAME.rgba WIDTH HEIGHT OUT.labels`).
"""
