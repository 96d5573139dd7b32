"""The Android demo app backend: libmvdseg (a C library that segments camera frames with a bundle), its JNI bridge
and the ``MvdSegmenter`` Java class, built for the host, aarch64 (glibc) or Android, and packed into a bundle."""

from .build import AppBackendError, AppLibrary, build_app_library
from .jar import build_jar
from .package import AppBackend, build_app_backend

__all__ = ["AppBackend", "AppBackendError", "AppLibrary", "build_app_backend", "build_app_library", "build_jar"]
