"""Follow-up sequences, as plain rules: a campaign writes each recipient a first email (step 0)
and up to three follow-ups (`MAX_FOLLOW_UPS` in shared/contracts/campaign.py), each sent a number
of working days after the step before it, in the same thread ("Re:" subject, `In-Reply-To` and
`References` naming the first Message-ID).

A recipient's sequence stops for good when they reply, unsubscribe, bounce or complain, when a
person stops it, when the campaign is cancelled, or when an earlier step could not be sent. The
follow-ups' text is short and written from templates in the recipient's language: it points back
to the first email, which the recruiter reviewed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.campaign.domain.composing import (
    CandidateProfile,
    Draft,
    SenderIdentity,
    greeting_name,
)

# What stops the rest of a recipient's sequence, by the delivery event that reports it.
STOPPING_EVENTS: frozenset[str] = frozenset({"replied", "unsubscribed", "bounced", "complained"})


def stops_sequence(kind: str, detail: Mapping[str, Any]) -> bool:
    """Whether a delivery event ends the recipient's sequence: a reply, an unsubscribe, a
    complaint, or a bounce (a hard one: a soft bounce is retried, and suppresses the address only
    at the limit, which then stops the sequence at its next claim)."""
    if kind == "bounced":
        return detail.get("permanent") is True
    return kind in STOPPING_EVENTS


# A follow-up that may still be sent: drafted (with its first email), waiting for the step
# before it, or due.
STOPPABLE_STATUSES: tuple[str, ...] = ("drafted", "waiting", "approved")
_REPLY_PREFIXES = ("re:", "aw:", "sv:", "antw:")


def step_email_id(campaign_id: uuid.UUID, candidate_id: uuid.UUID, step: int) -> uuid.UUID:
    """The id of a recipient's email at `step`: derived, so a redrafted step keeps its id, its
    unsubscribe link and its Message-ID (step 0 keeps the id campaigns had before sequences)."""
    name = str(candidate_id) if step == 0 else f"{candidate_id}:step:{step}"
    return uuid.uuid5(campaign_id, name)


def add_working_days(start: datetime, days: int) -> datetime:
    """`days` working days (Monday to Friday) after `start`, at the same time of day. A start on
    a weekend counts from the next Monday. The sending window then moves the email into the
    recipient's working hours."""
    if days < 0:
        raise ValueError("days must not be negative")
    moment = start
    while moment.weekday() >= 5:
        moment += timedelta(days=1)
    left = days
    while left > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            left -= 1
    return moment


def thread_subject(first_subject: str) -> str:
    """The follow-up's subject: the first email's, as a reply ("Re: ..."), never "Re: Re:"."""
    subject = first_subject.strip()
    if subject.lower().startswith(_REPLY_PREFIXES):
        return subject
    return f"Re: {subject}"


def thread_references(first_message_id: str | None) -> dict[str, str]:
    """The headers that put a follow-up in the first email's thread."""
    if not first_message_id:
        return {}
    return {"In-Reply-To": first_message_id, "References": first_message_id}


@dataclass(frozen=True)
class _Texts:
    greeting: str
    nudge: str
    last: str
    closing: str


_TEXTS: dict[str, _Texts] = {
    "en": _Texts(
        greeting="Hi {name},",
        nudge=(
            "I wanted to bring my note about the {job} role back to the top of your inbox. If it "
            "sounds interesting, a short reply is enough and I will send you the details."
        ),
        last=(
            "One last note about the {job} role at {company}: if the timing is not right, no "
            "problem at all, and I will not write about it again. If you would like to hear "
            "more, just reply."
        ),
        closing="Best regards,",
    ),
    "de": _Texts(
        greeting="Hallo {name},",
        nudge=(
            "ich wollte meine Nachricht zur Stelle {job} noch einmal nach oben holen. Wenn sie "
            "Sie interessiert, genügt eine kurze Antwort, und ich schicke Ihnen die Details."
        ),
        last=(
            "eine letzte Nachricht zur Stelle {job} bei {company}: Wenn es gerade nicht passt, "
            "ist das völlig in Ordnung, und ich schreibe Ihnen dazu nicht noch einmal. Wenn Sie "
            "mehr erfahren möchten, antworten Sie einfach."
        ),
        closing="Viele Grüße",
    ),
    "es": _Texts(
        greeting="Hola {name}:",
        nudge=(
            "Quería recuperar mi mensaje sobre el puesto de {job}. Si le interesa, basta con una "
            "respuesta breve y le envío los detalles."
        ),
        last=(
            "Una última nota sobre el puesto de {job} en {company}: si no es el momento, no hay "
            "ningún problema y no volveré a escribirle sobre ello. Si quiere saber más, "
            "simplemente responda."
        ),
        closing="Saludos cordiales,",
    ),
}


def follow_up_draft(
    step: int,
    steps: int,
    first_subject: str,
    candidate: CandidateProfile,
    job_title: str,
    sender: SenderIdentity,
    language: str = "en",
) -> Draft:
    """The draft of follow-up `step` (1-based) of `steps`, without its footer: a nudge, and for
    the last one a polite close that promises no further email."""
    if not 1 <= step <= steps:
        raise ValueError(f"step {step} is not a follow-up of a {steps}-step sequence")
    texts = _TEXTS.get(language, _TEXTS["en"])
    fields = {"name": greeting_name(candidate), "job": job_title, "company": sender.company}
    middle = texts.last if step == steps and steps > 1 else texts.nudge
    body = "\n\n".join(
        [
            texts.greeting.format(**fields),
            middle.format(**fields),
            f"{texts.closing}\n{sender.name}",
        ]
    )
    return Draft(subject=thread_subject(first_subject), body=body)
