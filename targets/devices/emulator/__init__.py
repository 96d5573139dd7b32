"""An emulated Android phone the real ``adb`` talks to: adbd's wire protocol over a local aarch64 sandbox.

``EmulatedPhone(root).start()`` serves in-process; :func:`spawn` runs it as a subprocess (what tests kill to
simulate a phone that disappears); ``mvd device emulate`` runs it in the foreground.
"""

from .daemon import EmulatedPhone
from .layout import PhoneSpec
from .process import spawn

__all__ = ["EmulatedPhone", "PhoneSpec", "spawn"]
