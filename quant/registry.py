"""Config type → handler registry (torchao's ``register_quantize_module_handler``, ~15 lines).

The decorator returns the function unchanged, so handlers stay callable directly; looking up an unregistered
config type is a user error with the known types listed, not a bare ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .config import QuantConfig
from .errors import QuantConfigError

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)

_HANDLERS: dict[type[QuantConfig], Handler] = {}


def register_quant_handler(config_type: type[QuantConfig]) -> Callable[[F], F]:
    """Register ``fn(model, config, calib)`` as the handler of ``config_type``."""
    if not (isinstance(config_type, type) and issubclass(config_type, QuantConfig)):
        raise TypeError(f"register_quant_handler needs a QuantConfig subclass, got {config_type!r}")

    def decorator(fn: F) -> F:
        previous = _HANDLERS.get(config_type)
        if previous is not None and previous is not fn:
            raise ValueError(f"{config_type.__name__} already has handler {previous.__qualname__}")
        _HANDLERS[config_type] = fn
        return fn  # returned so the handler stays usable by name

    return decorator


def get_quant_handler(config: QuantConfig) -> Handler:
    """The handler registered for ``type(config)`` (exact type: a subclass needs its own registration)."""
    handler = _HANDLERS.get(type(config))
    if handler is None:
        known = ", ".join(sorted(t.__name__ for t in _HANDLERS)) or "none"
        raise QuantConfigError(f"no quantization handler is registered for {type(config).__name__}",
                               hint=f"known configs: {known}; register one with @register_quant_handler")
    return handler


def registered_configs() -> tuple[type[QuantConfig], ...]:
    """Config types that currently have a handler."""
    return tuple(_HANDLERS)
