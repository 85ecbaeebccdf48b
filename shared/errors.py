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


class Refused(Exception):
    """A command that cannot be done as asked. Every service raises this one error; the command
    consumer (`shared.service`) turns it into the reply `{ok: false, error: {code, message}}`,
    and the gateway maps `code` to an HTTP status (`not_found` 404, `conflict` 409,
    `invalid_input` 422, ...)."""

    code = "invalid_input"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
