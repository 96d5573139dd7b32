"""Devices: one interface (push, pull, shell with exit code, props) over adb, the host and the emulated phone."""

from .adb import AdbDevice, list_adb_devices
from .base import Device, DeviceError, DeviceFullError, DeviceGoneError, DeviceTimeoutError, ShellResult
from .local import LocalDevice

__all__ = ["AdbDevice", "Device", "DeviceError", "DeviceFullError", "DeviceGoneError", "DeviceTimeoutError",
           "LocalDevice", "ShellResult", "list_adb_devices"]
