"""Campaign rows written straight into the test database: jobs, candidates, campaigns, emails and
suppressions, and the two sets tests ask for most (an audience a campaign finds, and a campaign
with its emails already drafted).

A factory writes a plausible row (in Berlin, found via GitHub) with the values it is given; a
None leaves that column to the schema (NULL, or its default). The session database is shared by
every test, so each test marks its rows with its `tag` (in a job's title or external ref, and in
every address), and the `tag` fixture deletes them afterwards (`delete_tagged`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.campaign.domain.composing import Draft, FooterContext, SenderIdentity, finalise
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.messages import make_message_id
from shared.db import Database
from shared.settings import Settings


async def _insert(db: Database, table: str, key: str, **values: Any) -> Any:
    """INSERT the values that are not None into `campaign.<table>`; the new row's `key`."""
    columns = {name: value for name, value in values.items() if value is not None}
    names = ", ".join(columns)  # this module's own table and column names, never a caller's
    placeholders = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    sql = f"INSERT INTO campaign.{table} ({names}) VALUES ({placeholders}) RETURNING {key}"  # noqa: S608
    return await db.fetchval(sql, *columns.values())


async def add_job(
    db: Database,
    title: str,
    *,
    skills: Sequence[str] = (),
    city: str | None = "Berlin",
    country: str | None = "DE",
    seniority: str | None = None,
    description: str | None = None,
    status: str | None = None,
    external_ref: str | None = None,
) -> uuid.UUID:
    """A job, open unless `status` says otherwise; its id."""
    job_id: uuid.UUID = await _insert(
        db, "jobs", "job_id",
        title=title, skills=list(skills), city=city, country=country, seniority=seniority,
        description=description, status=status, external_ref=external_ref,
    )  # fmt: skip
    return job_id


async def add_candidate(
    db: Database,
    full_name: str,
    *,
    email: str,
    first_name: str | None = None,
    city: str | None = "Berlin",
    country: str | None = "DE",
    seniority: str | None = None,
    years: int | None = None,
    skills: Sequence[str] = (),
    summary: str | None = None,
    found_via: str | None = "GitHub",
    source: str = "test",
) -> uuid.UUID:
    """A candidate; its id."""
    candidate_id: uuid.UUID = await _insert(
        db, "candidates", "candidate_id",
        full_name=full_name, email=email, first_name=first_name, city=city, country=country,
        seniority=seniority, years_experience=years, skills=list(skills), summary=summary,
        found_via=found_via, source=source,
    )  # fmt: skip
    return candidate_id


async def add_campaign(
    db: Database, job_id: uuid.UUID, *, name: str = "test", status: str | None = None
) -> uuid.UUID:
    """A campaign about the job, extracting unless `status` says otherwise; its id."""
    campaign_id: uuid.UUID = await _insert(
        db, "campaigns", "campaign_id",
        campaign_id=uuid.uuid4(), job_id=job_id, name=name, status=status,
    )  # fmt: skip
    return campaign_id


async def add_email(
    db: Database,
    campaign_id: uuid.UUID,
    job_id: uuid.UUID,
    candidate_id: uuid.UUID,
    *,
    to_address: str,
    subject: str = "Hi",
    body: str = "A job",
    status: str = "drafted",
    message_id: str | None = None,
    email_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> uuid.UUID:
    """An email of the campaign to the candidate, drafted unless `status` says otherwise; a sent or
    bounced one was sent when it was created. Its id."""
    sent = status in ("sent", "bounced")
    new_id: uuid.UUID = await _insert(
        db, "emails", "email_id",
        email_id=email_id, campaign_id=campaign_id, job_id=job_id, candidate_id=candidate_id,
        to_address=to_address, subject=subject, body=body, status=status, message_id=message_id,
        created_at=created_at, sent_at=(created_at or datetime.now(UTC)) if sent else None,
    )  # fmt: skip
    return new_id


async def add_suppression(db: Database, email: str, reason: str = "unsubscribed") -> None:
    """Never mail `email` (stored as given: the schema wants it lower-case) again."""
    await db.execute(
        "INSERT INTO campaign.suppressions (email, reason) VALUES ($1, $2)", email, reason
    )


async def delete_tagged(db: asyncpg.Pool, tag: str) -> None:
    """Delete the rows marked with `tag`: campaigns about its jobs (their recipients, emails and
    delivery events go with them, ON DELETE CASCADE), then its suppressions, candidates and jobs.
    A service may still be working on them (sending the last emails of a test's campaign): a
    deadlock with it is tried again."""
    for attempt in range(1, CLEANUP_ATTEMPTS + 1):
        try:
            await _delete_tagged(db, f"%{tag}%")
        except asyncpg.DeadlockDetectedError:
            if attempt == CLEANUP_ATTEMPTS:
                raise
            await asyncio.sleep(0.2 * attempt)
        else:
            return


CLEANUP_ATTEMPTS = 5


async def _delete_tagged(db: asyncpg.Pool, like: str) -> None:
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM campaign.campaigns WHERE job_id IN"
            " (SELECT job_id FROM campaign.jobs WHERE title LIKE $1 OR external_ref LIKE $1)",
            like,
        )
        await conn.execute("DELETE FROM campaign.suppressions WHERE email LIKE $1", like)
        await conn.execute(
            "DELETE FROM campaign.candidates WHERE email LIKE $1 OR external_ref LIKE $1", like
        )
        await conn.execute(
            "DELETE FROM campaign.jobs WHERE title LIKE $1 OR external_ref LIKE $1", like
        )


# --- An audience: a job and the candidates a campaign about it finds --------------------------


@dataclass(frozen=True)
class Audience:
    job_id: uuid.UUID
    title: str
    skill: str  # only these candidates have it
    addresses: list[str]  # best-ranked first

    @property
    def slots(self) -> dict[str, Any]:
        """The slots of a campaign request that finds exactly these candidates."""
        return {"skills": [self.skill], "location": "Berlin", "job_title": self.title}


async def add_audience(db: Database, tag: str, size: int) -> Audience:
    """An open job in Berlin with a skill that only its `size` new candidates have, each with less
    experience than the one before (so they rank in the order of `addresses`)."""
    suffix = uuid.uuid4().hex[:6]  # several audiences a test
    skill, title = f"python-{tag}-{suffix}", f"Platform Engineer {tag} {suffix}"
    job_id = await add_job(db, title, skills=[skill])
    addresses = []
    for i in range(size):
        address = f"person{i}-{suffix}-{tag}@example.com"
        await add_candidate(
            db, f"Person{i} Test", email=address, first_name=f"Person{i}", years=max(0, 20 - i),
            skills=[skill],
        )  # fmt: skip
        addresses.append(address)
    return Audience(job_id, title, skill, addresses)


# --- A campaign with its emails already written ------------------------------------------------


@dataclass(frozen=True)
class Email:
    email_id: uuid.UUID
    campaign_id: uuid.UUID
    address: str
    status: str
    message_id: str
    link: str  # the job link in its body, the recipient's own


@dataclass(frozen=True)
class Campaign:
    campaign_id: uuid.UUID
    job_id: uuid.UUID
    skill: str  # every recipient has it, and nobody else
    emails: list[Email]  # in the order of the recipients given


async def make_campaign(
    db: asyncpg.Pool,
    tag: str,
    recipients: Mapping[str, str],
    *,
    settings: Settings,
    links: UnsubscribeLinks | None = None,
    status: str = "sending",
    domain: str = "example.com",
) -> Campaign:
    """A job, a campaign about it in `status`, and for each recipient (a name, and the status of
    the email to them) a candidate and an email written as the drafting step writes them: a
    greeting, a job link of the recipient's own, the footer with the unsubscribe link (of `links`,
    else the settings'), and the Message-ID fixed. A sent email was sent now.

    The addresses are `<name>-<hex>-<tag>@<domain>`: a mixed-case `domain` shows that what is
    stored by address is stored lower-case."""
    sender = SenderIdentity.from_settings(settings)
    links = links or UnsubscribeLinks.from_settings(settings)
    suffix = uuid.uuid4().hex[:6]  # several campaigns a test
    skill, title = f"python-{suffix}-{tag}", f"Outreach Engineer {suffix} {tag}"
    emails: list[Email] = []
    async with db.acquire() as conn, conn.transaction():
        job_id = await add_job(conn, title, skills=[skill])
        campaign_id = await add_campaign(conn, job_id, name=f"{title} outreach", status=status)
        for name, email_status in recipients.items():
            address = f"{name}-{suffix}-{tag}@{domain}"
            candidate_id = await add_candidate(
                conn, name.title(), email=address, first_name=name.title(), skills=[skill]
            )
            email_id = uuid.uuid4()
            link = f"https://careers.example.com/jobs/{tag}/{name}?ref=mail&lang=en"
            pitch = f"Hi {name.title()},\n\nThe role (<b>remote</b>): {link}.\nInterested?"
            footer = FooterContext(sender, title, "GitHub", links.url(email_id))
            draft = finalise(Draft(f"{title} at Acme", pitch), footer)
            message_id = make_message_id(email_id, sender.email)
            await add_email(
                conn, campaign_id, job_id, candidate_id, email_id=email_id, to_address=address,
                subject=draft.subject, body=draft.body, status=email_status, message_id=message_id,
            )  # fmt: skip
            emails.append(Email(email_id, campaign_id, address, email_status, message_id, link))
    return Campaign(campaign_id, job_id, skill, emails)


# --- Settings and names for tests that run whole campaigns -------------------------------------

# A campaign service and workflow engine that send at once and look for due work often.
QUICK_SENDING = {
    "SEND_RATE_PER_SECOND": "0",
    "CAMPAIGN_SEND_RATE_PER_SECOND": "0",
    "SEND_POLL_SECONDS": "0.2",
    "WORKFLOW_TIMER_POLL_SECONDS": "0.2",
}


def letters(tag: str) -> str:
    """The tag in letters only, for a job title as people write them (the intent service ends a
    title at a word with digits); such a job is found by its `external_ref`, which holds the tag."""
    return tag.translate(str.maketrans("0123456789", "ghijklmnop"))
