"""Signed links in campaign email: an HMAC token per email and purpose (unsubscribe, open,
click), so an endpoint trusts the email id without a database lookup and nobody can forge
another's link; where the unsubscribe and tracking links point."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from services.campaign.domain.monitoring import Purpose
from shared.settings import Settings


def _token_context(purpose: str) -> bytes:
    # Keeps one purpose's MACs apart from another's (and from any other use of the key): a token
    # made to unsubscribe never verifies as an open or a click, even under the same secret.
    return f"campaign-{purpose}:v1:".encode()


def make_email_token(purpose: str, email_id: uuid.UUID, secret: str) -> str:
    """The email id and its HMAC-SHA256 for `purpose`, URL-safe base64 without padding: an
    endpoint can trust the id without a database lookup, and nobody can guess another's link."""
    mac = hmac.new(secret.encode(), _token_context(purpose) + email_id.bytes, hashlib.sha256)
    return base64.urlsafe_b64encode(email_id.bytes + mac.digest()).rstrip(b"=").decode("ascii")


def verify_email_token(purpose: str, token: str, secret: str) -> uuid.UUID | None:
    """The email id a `purpose` token was made for, or None (another purpose or secret, altered,
    truncated, not base64)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 + hashlib.sha256().digest_size:
        return None
    email_id = uuid.UUID(bytes=raw[:16])
    expected = make_email_token(purpose, email_id, secret)
    return email_id if hmac.compare_digest(expected, token) else None


def make_unsubscribe_token(email_id: uuid.UUID, secret: str) -> str:
    return make_email_token("unsubscribe", email_id, secret)


def verify_unsubscribe_token(token: str, secret: str) -> uuid.UUID | None:
    """The email id a token was made for, or None if it was not made with this secret."""
    return verify_email_token("unsubscribe", token, secret)


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Where unsubscribe links point and how they are signed."""

    base_url: str
    secret: str
    mailto: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UnsubscribeLinks:
        return cls(
            base_url=settings.public_base_url,
            secret=settings.unsubscribe_secret.get_secret_value(),
            mailto=settings.unsubscribe_mailto,
        )

    def url(self, email_id: uuid.UUID) -> str:
        token = make_unsubscribe_token(email_id, self.secret)
        return f"{self.base_url.rstrip('/')}/u/{token}"

    def mailto_uri(self, email_id: uuid.UUID) -> str | None:
        if not self.mailto:
            return None
        token = make_unsubscribe_token(email_id, self.secret)
        return f"mailto:{self.mailto}?subject=unsubscribe%20{token}"


def make_tracking_token(purpose: Purpose, email_id: uuid.UUID, secret: str) -> str:
    """The email id and its MAC for `purpose` (the unsubscribe token's scheme, another purpose)."""
    return make_email_token(purpose, email_id, secret)


def verify_tracking_token(purpose: Purpose, token: str, secret: str) -> uuid.UUID | None:
    """The email id a `purpose` token was made for, or None."""
    return verify_email_token(purpose, token, secret)


@dataclass(frozen=True)
class TrackingLinks:
    """The public tracking URLs of one email (for HTML bodies: plain-text email has no pixel)."""

    base_url: str
    secret: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TrackingLinks:
        return cls(settings.public_base_url, settings.unsubscribe_secret.get_secret_value())

    def open_pixel(self, email_id: uuid.UUID) -> str:
        token = make_tracking_token("open", email_id, self.secret)
        return f"{self.base_url.rstrip('/')}/t/o/{token}.gif"

    def click(self, email_id: uuid.UUID, url: str) -> str:
        token = make_tracking_token("click", email_id, self.secret)
        return f"{self.base_url.rstrip('/')}/t/c/{token}?url={quote(url, safe='')}"
