"""A faithful local imitation of the ten networks' APIs (see core.py)."""

from ouipost.sandbox.core import (
    SANDBOX_KEY,
    Fault,
    Publication,
    RecordedRequest,
    Sandbox,
    create_sandbox_app,
    record_of,
    set_mount_prefix,
)

__all__ = [
    "SANDBOX_KEY",
    "Fault",
    "Publication",
    "RecordedRequest",
    "Sandbox",
    "create_sandbox_app",
    "record_of",
    "set_mount_prefix",
]
