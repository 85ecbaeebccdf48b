"""Signed webhooks: `X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`"<t>.<raw body>"` with the shared secret, refused outside a time window so that a captured request
cannot be replayed later. Several `v1` values may be sent (a sender rotating its secret signs with
both); one matching is enough. Pure: the caller passes the clock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

HEADER = "X-Webhook-Signature"
MAX_HEADER_CHARS = 2_000
MAX_SIGNATURES = 8
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
FORMAT = "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>'>"


class BadSignature(Exception):
    """The signature header is malformed, out of the time window, or matches no signature; the
    message says which, for the sender's developer."""


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]  # lower-case hex


def compute(secret: str, timestamp: int, body: bytes) -> str:
    """The hex `v1` signature of `body` sent at `timestamp`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def header_value(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The header a sender sends: one `v1` per secret."""
    return ",".join([f"t={timestamp}", *(f"v1={compute(s, timestamp, body)}" for s in secrets)])


def parse(header: str) -> SignatureHeader:
    """The timestamp and `v1` signatures of a header; other schemes (`v0=`, ...) are ignored."""
    if len(header) > MAX_HEADER_CHARS:
        raise BadSignature(f"{HEADER} is too long (at most {MAX_HEADER_CHARS} characters)")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise BadSignature(f"malformed {HEADER}: {part.strip()!r} is not name=value; "
                               f"expected {FORMAT}")  # fmt: skip
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            if len(value) != 64 or not set(value) <= _HEX_DIGITS:
                raise BadSignature(f"malformed {HEADER}: v1 must be 64 hex digits")
            signatures.append(value.lower())
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise BadSignature(f"malformed {HEADER}: needs one t=<unix seconds>; expected {FORMAT}")
    if not signatures:
        raise BadSignature(f"malformed {HEADER}: no v1 signature; expected {FORMAT}")
    if len(signatures) > MAX_SIGNATURES:
        raise BadSignature(f"{HEADER} carries more than {MAX_SIGNATURES} v1 signatures")
    return SignatureHeader(int(timestamps[0]), tuple(signatures))


def verify(header: str, body: bytes, secret: str, now: float, tolerance: float) -> int:
    """Check a signature header against the raw body; its timestamp when good, else
    BadSignature saying what is wrong."""
    signed = parse(header)
    age = now - signed.timestamp
    if age > tolerance:
        raise BadSignature(
            f"{HEADER} timestamp is {age:.0f} s old, more than the {tolerance:g} s allowed "
            "(a replay, or the sender's clock is wrong): sign each request when sending it"
        )
    if -age > tolerance:
        raise BadSignature(
            f"{HEADER} timestamp is {-age:.0f} s in the future, more than the {tolerance:g} s "
            "allowed: the sender's clock is wrong"
        )
    expected = compute(secret, signed.timestamp, body)
    # Every candidate is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(expected, sent) for sent in signed.signatures]
    if not any(matches):
        raise BadSignature(
            f"no v1 signature in {HEADER} matches the body: a wrong secret, or the body was "
            "changed on the way (sign the exact bytes sent)"
        )
    return signed.timestamp
