"""Errors shared by every service."""

from __future__ import annotations

import re


def redact(url: str) -> str:
    """Hide the password in a connection URL before it is printed."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class DependencyUnavailable(RuntimeError):
    """A broker, database or cache named by a setting cannot be reached at startup."""

    def __init__(self, setting: str, value: str, reason: str) -> None:
        self.setting = setting
        self.value = value
        self.reason = reason
        super().__init__(
            f"cannot reach {setting}={redact(value)} ({reason}); "
            f"check that the server runs and that {setting} points at it"
        )


class ConfigurationError(RuntimeError):
    """The configuration names something that cannot work (a module that does not import, an
    invalid workflow definition); the message says which setting and why."""
