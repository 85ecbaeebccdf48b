"""Campaign monitoring rules: tracking tokens, the redirect allow-list, what inbound events do, and
counts; plus the command handlers against an in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr, ValidationError

from services.campaign.domain.composing import Draft, FooterContext, SenderIdentity, finalise
from services.campaign.domain.links import (
    TrackingLinks,
    UnsubscribeLinks,
    make_tracking_token,
    make_unsubscribe_token,
    verify_tracking_token,
    verify_unsubscribe_token,
)
from services.campaign.domain.monitoring import (
    SuppressionReason,
    counts_from,
    dedupe_id,
    links_in,
    mask_address,
    normalise_message_id,
    redirect_allowed,
    suppression_for,
)
from services.campaign.handlers.monitoring import (
    record_email_events,
    track_click,
    track_open,
    unsubscribe,
)
from services.campaign.repository.delivery import EmailRef
from shared.contracts.campaign import (
    CampaignView,
    DeliveryKind,
    InboundEvent,
    InboundResult,
    RecordEmailEventsCommand,
)
from shared.errors import Refused
from shared.settings import Settings

SECRET = "s" * 40
EMAIL_ID = uuid.UUID("11111111-2222-4333-8444-555555555555")


# ---- Tokens ----------------------------------------------------------------------------------


def test_a_tracking_token_names_its_email() -> None:
    for purpose in ("open", "click"):
        token = make_tracking_token(purpose, EMAIL_ID, SECRET)
        assert verify_tracking_token(purpose, token, SECRET) == EMAIL_ID


def test_tokens_of_one_purpose_are_not_tokens_of_another() -> None:
    open_token = make_tracking_token("open", EMAIL_ID, SECRET)
    click_token = make_tracking_token("click", EMAIL_ID, SECRET)
    unsubscribe_token = make_unsubscribe_token(EMAIL_ID, SECRET)
    assert len({open_token, click_token, unsubscribe_token}) == 3
    assert verify_tracking_token("click", open_token, SECRET) is None
    assert verify_tracking_token("open", click_token, SECRET) is None
    # A pixel or click URL (visible in the HTML) cannot unsubscribe anyone, nor the reverse.
    assert verify_unsubscribe_token(open_token, SECRET) is None
    assert verify_unsubscribe_token(click_token, SECRET) is None
    assert verify_tracking_token("open", unsubscribe_token, SECRET) is None
    assert verify_tracking_token("click", unsubscribe_token, SECRET) is None


@pytest.mark.parametrize(
    "token",
    [
        make_tracking_token("open", EMAIL_ID, "another-secret-" * 3),
        make_tracking_token("open", EMAIL_ID, SECRET)[:-1],
        make_tracking_token("open", EMAIL_ID, SECRET)[:-2] + "AA",
        "not base64 !!",
        "",
        "A" * 64,
    ],
)
def test_forged_or_damaged_tokens_name_no_email(token: str) -> None:
    assert verify_tracking_token("open", token, SECRET) is None


def test_tracking_links_have_the_shapes_the_gateway_serves() -> None:
    links = TrackingLinks("https://jobs.example.com/", SECRET)
    pixel = links.open_pixel(EMAIL_ID)
    assert pixel.startswith("https://jobs.example.com/t/o/")
    assert pixel.endswith(".gif")
    token = pixel.removeprefix("https://jobs.example.com/t/o/").removesuffix(".gif")
    assert verify_tracking_token("open", token, SECRET) == EMAIL_ID

    target = "https://example.com/jobs/42?ref=mail&x=a b"
    click = urlsplit(links.click(EMAIL_ID, target))
    assert click.path.startswith("/t/c/")
    assert verify_tracking_token("click", click.path.removeprefix("/t/c/"), SECRET) == EMAIL_ID
    assert parse_qs(click.query)["url"] == [target]


def test_the_unsubscribe_url_shape_is_the_one_the_gateway_serves() -> None:
    url = UnsubscribeLinks("https://jobs.example.com/", SECRET).url(EMAIL_ID)
    assert url == f"https://jobs.example.com/u/{make_unsubscribe_token(EMAIL_ID, SECRET)}"


# ---- Redirect allow-list ---------------------------------------------------------------------

BODY = """Hi Ada,

Our role: https://example.com/jobs/42?ref=mail. The team blog (https://blog.example.com/team)
is worth a look, and so is http://example.org/about!

Best"""


def test_links_in_a_body_lose_their_trailing_punctuation() -> None:
    assert links_in(BODY) == [
        "https://example.com/jobs/42?ref=mail",
        "https://blog.example.com/team",
        "http://example.org/about",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/jobs/42?ref=mail",
        "https://blog.example.com/team",
        "http://example.org/about",
    ],
)
def test_a_link_the_email_contains_may_be_followed(url: str) -> None:
    assert redirect_allowed(url, BODY)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.net/",
        "https://example.com/jobs/42",  # a prefix of a link
        "https://example.com/jobs/42?ref=mail&to=evil",  # a link extended
        "https://example.com/jobs/42?ref=mail.",  # with the sentence's full stop
        "HTTPS://EXAMPLE.COM/jobs/42?ref=mail",  # not character for character
        "javascript:alert(1)",
        "//example.com/jobs/42?ref=mail",
        "https://example.com/jobs/42?ref=mail\r\nSet-Cookie: x=1",
        "",
    ],
)
def test_any_other_url_is_refused(url: str) -> None:
    assert not redirect_allowed(url, BODY)


def test_the_footer_s_unsubscribe_link_is_a_link_of_the_email() -> None:
    links = UnsubscribeLinks("https://jobs.example.com", SECRET)
    sender = SenderIdentity("Rita", "rita@example.com", "Example Ltd", "1 Street, Berlin")
    footer = FooterContext(sender, "Data Engineer", None, links.url(EMAIL_ID))
    body = finalise(Draft("Hello", "Hi Ada"), footer).body
    assert redirect_allowed(links.url(EMAIL_ID), body)
    assert not redirect_allowed("https://jobs.example.com/", body)


# ---- Inbound events --------------------------------------------------------------------------


def test_an_email_is_opened_unsubscribed_and_complained_about_once_whoever_reports_it() -> None:
    other = uuid.uuid4()
    for kind in ("opened", "unsubscribed", "complained"):
        first = dedupe_id(EMAIL_ID, kind, {}, None)
        assert dedupe_id(EMAIL_ID, kind, {"via": "webhook"}, "provider-1") == first
        assert dedupe_id(other, kind, {}, None) != first
    assert dedupe_id(EMAIL_ID, "opened", {}, None) != dedupe_id(EMAIL_ID, "unsubscribed", {}, None)


def test_each_link_is_clicked_once_per_email() -> None:
    a = dedupe_id(EMAIL_ID, "clicked", {"url": "https://a.example"}, None)
    assert a == dedupe_id(EMAIL_ID, "clicked", {"url": "https://a.example"}, "x")
    assert a != dedupe_id(EMAIL_ID, "clicked", {"url": "https://b.example"}, None)


def test_other_events_are_deduplicated_by_the_provider_s_event_id() -> None:
    given = uuid.uuid4()
    assert dedupe_id(EMAIL_ID, "replied", {}, str(given)) == given
    assert dedupe_id(EMAIL_ID, "bounced", {}, "evt-1") == dedupe_id(
        uuid.uuid4(), "bounced", {}, "evt-1"
    )
    assert dedupe_id(EMAIL_ID, "bounced", {}, "evt-1") != dedupe_id(
        EMAIL_ID, "bounced", {}, "evt-2"
    )
    assert dedupe_id(EMAIL_ID, "replied", {}, None) != dedupe_id(EMAIL_ID, "replied", {}, None)


@pytest.mark.parametrize(
    ("kind", "detail", "soft", "expected"),
    [
        ("unsubscribed", {}, 0, "unsubscribed"),
        ("complained", {}, 0, "complaint"),
        ("bounced", {"permanent": True}, 0, "hard_bounce"),
        ("bounced", {"permanent": "yes"}, 1, None),  # only a JSON true is a hard bounce
        ("bounced", {}, 1, None),
        ("bounced", {"permanent": False}, 2, "soft_bounce_limit"),
        ("replied", {}, 0, None),
        ("replied", {"classification": "not_interested", "via": "imap"}, 0, None),
        ("replied", {"classification": "unsubscribe", "via": "imap"}, 0, "unsubscribed"),
        ("opened", {"classification": "unsubscribe"}, 0, None),  # only a reply says it
        ("opened", {}, 0, None),
        ("delivered", {}, 0, None),
    ],
)
def test_what_an_inbound_event_suppresses(
    kind: str, detail: dict[str, Any], soft: int, expected: str | None
) -> None:
    assert suppression_for(kind, detail, soft_bounces=soft, soft_bounce_limit=2) == expected


def test_soft_bounces_never_suppress_with_a_zero_limit() -> None:
    assert suppression_for("bounced", {}, soft_bounces=50, soft_bounce_limit=0) is None


def test_message_ids_and_addresses() -> None:
    assert normalise_message_id(" <abc@example.com> ") == "<abc@example.com>"
    assert normalise_message_id("abc@example.com") == "<abc@example.com>"
    assert mask_address("ada.lovelace@example.com") == "a***@example.com"


def test_inbound_events_name_an_email() -> None:
    with pytest.raises(ValidationError, match="email_id or message_id"):
        InboundEvent.model_validate({"kind": "replied"})
    with pytest.raises(ValidationError):
        InboundEvent.model_validate({"email_id": str(EMAIL_ID), "kind": "exploded"})


# ---- Counts ----------------------------------------------------------------------------------


def test_counts_from_statuses_and_events() -> None:
    counts = counts_from(
        {
            "drafted": (3, 0),
            "approved": (1, 0),
            "sending": (1, 0),
            "sent": (4, 4),
            "bounced": (2, 1),  # one bounced at RCPT (never sent), one reported later
            "failed": (1, 0),
            "rejected": (5, 0),
            "expired": (6, 0),
            "cancelled": (2, 0),
        },
        {"opened": 3, "clicked": 2, "replied": 1, "unsubscribed": 1, "delivered": 4},
    )
    assert counts.model_dump() == {
        "total": 25,
        "drafted": 3,
        "approved": 9,
        "rejected": 5,
        "expired": 6,
        "queued": 2,
        "sent": 5,
        "failed": 1,
        "bounced": 2,
        "cancelled": 2,
        "delivered": 4,
        "opened": 3,
        "clicked": 2,
        "replied": 1,
        "unsubscribed": 1,
        "complained": 0,
    }


def test_an_empty_campaign_counts_zero() -> None:
    assert set(counts_from({}, {}).model_dump().values()) == {0}


# ---- Settings --------------------------------------------------------------------------------


def test_production_refuses_the_development_webhook_secret() -> None:
    real = {
        "environment": "production",
        "unsubscribe_secret": SecretStr("u" * 40),
        "public_base_url": "https://jobs.example.com",
        "sender_email": "talent@jobs.example.com",
        "sender_postal_address": "2 Real Road, Berlin",
    }
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings(**real)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(**real, webhook_secret=SecretStr("short"))  # type: ignore[arg-type]
    assert Settings(**real, webhook_secret=SecretStr("w" * 40)).environment == "production"  # type: ignore[arg-type]


# ---- Handlers against an in-memory store -----------------------------------------------------


@dataclass
class FakeStore:
    emails_: dict[uuid.UUID, EmailRef] = field(default_factory=dict)
    events: dict[uuid.UUID, tuple[uuid.UUID, str, dict[str, Any]]] = field(default_factory=dict)
    suppressed: dict[str, str] = field(default_factory=dict)

    async def campaign(self, campaign_id: uuid.UUID) -> CampaignView | None:
        return None

    async def email(self, email_id: uuid.UUID) -> EmailRef | None:
        return self.emails_.get(email_id)

    async def emails(
        self, email_ids: list[uuid.UUID], message_ids: list[str]
    ) -> tuple[dict[uuid.UUID, EmailRef], dict[str, EmailRef]]:
        refs = [
            e
            for e in self.emails_.values()
            if e.email_id in email_ids or e.message_id in message_ids
        ]
        return {e.email_id: e for e in refs}, {e.message_id: e for e in refs if e.message_id}

    async def record(
        self,
        email: EmailRef,
        kind: DeliveryKind,
        event_id: uuid.UUID,
        detail: Mapping[str, Any],
        occurred_at: datetime | None = None,
    ) -> bool:
        if event_id in self.events:
            return False
        self.events[event_id] = (email.email_id, kind, dict(detail))
        return True

    async def suppress(self, email: EmailRef, reason: SuppressionReason, detail: str) -> bool:
        return self.suppressed.setdefault(email.address, reason) == reason

    async def is_suppressed(self, address: str) -> bool:
        return address in self.suppressed

    async def mark_bounced(self, email: EmailRef, reason: str) -> None:
        if email.status in {"sent", "sending"}:
            self.emails_[email.email_id] = replace(email, status="bounced")

    async def soft_bounces(self, address: str) -> int:
        return sum(
            1
            for email_id, kind, detail in self.events.values()
            if kind == "bounced"
            and detail.get("permanent") is not True
            and self.emails_[email_id].address == address
        )

    def kinds(self) -> list[str]:
        return sorted(kind for _, kind, _ in self.events.values())


def sent_email(status: str = "sent", address: str = "Ada@Example.com") -> EmailRef:
    email_id = uuid.uuid4()
    return EmailRef(
        email_id, uuid.uuid4(), address, f"<{email_id}@example.com>", status,
        "Hi\n\nSee https://example.com/jobs/1 please.",
    )  # fmt: skip


def store_with(*emails: EmailRef) -> FakeStore:
    return FakeStore(emails_={e.email_id: e for e in emails})


async def test_the_first_open_of_a_sent_email_is_recorded_once() -> None:
    email = sent_email()
    store = store_with(email)
    token = make_tracking_token("open", email.email_id, SECRET)
    assert await track_open(store, token, SECRET) == {"recorded": True}
    assert await track_open(store, token, SECRET) == {"recorded": False}
    assert store.kinds() == ["opened"]


async def test_opens_of_drafts_and_bad_tokens_record_nothing() -> None:
    draft = sent_email(status="drafted")
    store = store_with(draft)
    assert await track_open(store, make_tracking_token("open", draft.email_id, SECRET), SECRET) == {
        "recorded": False
    }
    with pytest.raises(Refused):
        await track_open(store, make_tracking_token("click", draft.email_id, SECRET), SECRET)
    assert store.events == {}


async def test_a_click_on_a_contained_link_redirects_and_is_recorded() -> None:
    email = sent_email()
    store = store_with(email)
    token = make_tracking_token("click", email.email_id, SECRET)
    target = await track_click(store, token, "https://example.com/jobs/1", SECRET)
    assert target == {"url": "https://example.com/jobs/1", "recorded": True}
    assert store.kinds() == ["clicked"]


async def test_a_click_on_a_foreign_link_is_refused_and_records_nothing() -> None:
    email = sent_email()
    store = store_with(email)
    token = make_tracking_token("click", email.email_id, SECRET)
    with pytest.raises(Refused, match="does not contain the link") as refused:
        await track_click(store, token, "https://evil.example.net/", SECRET)
    assert refused.value.code == "invalid_input"
    assert store.events == {}


async def test_unsubscribe_suppresses_the_lower_case_address_once() -> None:
    email = sent_email(address="Ada@Example.com")
    store = store_with(email)
    token = make_unsubscribe_token(email.email_id, SECRET)
    view = await unsubscribe(store, token, True, SECRET)
    assert view == {"address_hint": "a***@example.com", "unsubscribed": True}
    await unsubscribe(store, token, False, SECRET)
    assert store.suppressed == {"ada@example.com": "unsubscribed"}
    assert store.kinds() == ["unsubscribed"]
    with pytest.raises(Refused):
        await unsubscribe(store, make_tracking_token("open", email.email_id, SECRET), True, SECRET)


async def test_webhook_events_apply_their_meaning_once() -> None:
    hard, soft, replied = sent_email(), sent_email(address="bo@example.com"), sent_email()
    store = store_with(hard, soft, replied)
    events = [
        {"message_id": hard.message_id.strip("<>") if hard.message_id else "", "kind": "bounced",
         "detail": {"permanent": True}, "event_id": "e1"},
        {"email_id": str(soft.email_id), "kind": "bounced", "event_id": "e2"},
        {"email_id": str(replied.email_id), "kind": "replied", "event_id": "e3"},
        {"email_id": str(uuid.uuid4()), "kind": "replied"},
        {"email_id": str(hard.email_id), "kind": "bounced", "detail": {"permanent": True},
         "event_id": "e1"},
    ]  # fmt: skip
    command = RecordEmailEventsCommand.model_validate({"events": events})
    result = InboundResult.model_validate(await record_email_events(store, command, 2))
    assert (result.accepted, result.duplicates) == (3, 1)
    assert [(r.index, r.reason.split()[0]) for r in result.rejected] == [(3, "unknown")]
    assert store.emails_[hard.email_id].status == "bounced"
    assert store.suppressed == {"ada@example.com": "hard_bounce"}

    again = RecordEmailEventsCommand.model_validate(
        {"events": [{"email_id": str(soft.email_id), "kind": "bounced", "event_id": "e4"}]}
    )
    await record_email_events(store, again, 2)
    assert store.suppressed["bo@example.com"] == "soft_bounce_limit"
    assert store.emails_[soft.email_id].status == "sent"  # a soft bounce does not end the email
