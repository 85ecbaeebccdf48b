"""A candidate's privacy rights through the gateway, with the real campaign service: the export of
everything held about them, then the erasure (no campaign table holds their name or address, the
address's hash is kept, their unsent email is cancelled, the campaigns' counts stay), after which
an import, an extraction and a search never bring them back; and the hash SQL computes is the one
Python computes.

The database is shared: every test makes its own rows, marked with a fresh tag.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.campaign.domain.importing import CANDIDATES, RowSkipped
from services.campaign.domain.privacy import address_hash
from services.campaign.importing import import_csv
from services.campaign.repository.candidates import (
    Contact,
    count_matches,
    extract_candidates,
    search_candidates,
)
from shared.contracts.intent import Slots
from shared.settings import Settings
from tests.support.api import MakeKey
from tests.support.campaign_rows import (
    add_campaign,
    add_candidate,
    add_email,
    add_job,
    add_suppression,
    make_campaign,
)
from tests.support.stack import Gateway, Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The campaign service and the gateway; the API as the admin."""
    return Stack({"campaign": {}}, user="dpo-admin", scopes=("admin",))


async def tables_holding(db: asyncpg.Pool, *needles: str) -> dict[str, int]:
    """Rows of every table in the campaign schema whose text holds any of the needles."""
    tables = await db.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'campaign' AND table_type = 'BASE TABLE'"
    )
    found: dict[str, int] = {}
    for row in tables:
        name = row["table_name"]
        # The names come from the catalogue, quoted: no caller's text reaches the SQL.
        count = await db.fetchval(
            f'SELECT count(*) FROM campaign."{name}" t'  # noqa: S608
            " WHERE t::text ILIKE ANY (SELECT '%' || n || '%' FROM unnest($1::text[]) AS u(n))",
            list(needles),
        )
        if count:
            found[name] = count
    return found


async def counts_of(api: httpx.AsyncClient, campaign_id: uuid.UUID) -> dict[str, Any]:
    response = await api.get(f"/api/campaigns/{campaign_id}")
    assert response.status_code == 200, response.text
    counts: dict[str, Any] = response.json()["counts"]
    return counts


async def test_an_emailed_candidate_is_exported_then_erased_and_never_comes_back(
    api: httpx.AsyncClient, db: asyncpg.Pool, prepared: Settings, tag: str, tmp_path: Path
) -> None:
    name = f"zora{tag}"  # unique in the shared database: her name and her address hold it
    campaign = await make_campaign(
        db, tag, {name: "sent", "other": "sent"}, settings=prepared, status="monitoring"
    )
    sent, other = campaign.emails
    address = sent.address
    candidate_id: uuid.UUID = await db.fetchval(
        "SELECT candidate_id FROM campaign.candidates WHERE email = $1", address
    )
    await db.execute(
        "INSERT INTO campaign.recipients (campaign_id, candidate_id, rank, matched_skills)"
        " VALUES ($1, $2, 1, $3)",
        campaign.campaign_id, candidate_id, [campaign.skill],
    )  # fmt: skip
    events = [
        ("opened", {}),
        ("clicked", {"url": sent.link}),
        ("bounced", {"permanent": False, "code": 452, "message": f"452 <{address}> mailbox full"}),
    ]
    for kind, detail in events:
        await db.execute(
            "INSERT INTO campaign.delivery_events (email_id, campaign_id, kind, detail)"
            " VALUES ($1, $2, $3, $4::jsonb)",
            sent.email_id, campaign.campaign_id, kind, json.dumps(detail),
        )  # fmt: skip
    await add_suppression(db, address.lower(), "unsubscribed")
    # A second campaign has a draft to her, not sent yet.
    job_id = await add_job(db, f"Data Engineer {tag}")
    second = await add_campaign(db, job_id, status="awaiting_review")
    pending = await add_email(
        db, second, job_id, candidate_id, to_address=address, subject=f"Hi {name}",
        body=f"Hi {name.title()}, a data role?",
    )  # fmt: skip
    # A reviewer edited that draft: its revisions hold her name too.
    await db.execute(
        "INSERT INTO campaign.email_revisions (email_id, revision, subject, body, edited_by)"
        " VALUES ($1, 0, $2, $3, 'template'), ($1, 1, $2, $4, 'reviewer')",
        pending, f"Hi {name}", f"Hi {name.title()}, a data role?", f"Dear {name.title()}",
    )  # fmt: skip
    counts_before = await counts_of(api, campaign.campaign_id)

    exported = await api.get(f"/api/candidates/{candidate_id}/export")
    assert exported.status_code == 200, exported.text
    held = exported.json()
    assert held["profile"]["email"] == address
    assert held["profile"]["full_name"] == name.title()
    assert held["erased_at"] is None
    assert [(e["email_id"], e["status"]) for e in held["emails"]] == [
        (str(sent.email_id), "sent"),
        (str(pending), "drafted"),
    ]
    assert name.title() in held["emails"][0]["body"]
    assert [r["revision"] for r in held["emails"][1]["revisions"]] == [0, 1]
    assert held["emails"][0]["sent_at"] is not None
    assert [e["kind"] for e in held["delivery_events"]] == ["opened", "clicked", "bounced"]
    assert held["suppression"]["reason"] == "unsubscribed"
    assert {c["campaign_id"] for c in held["campaigns"]} == {
        str(campaign.campaign_id), str(second),
    }  # fmt: skip
    assert await tables_holding(db, name, address)  # the scan finds her before the erasure

    erased = await api.delete(f"/api/candidates/{candidate_id}")
    assert erased.status_code == 204, erased.text
    assert erased.content == b""

    assert await tables_holding(db, name, address) == {}
    hashes = await db.fetchval(
        "SELECT count(*) FROM campaign.erased_addresses WHERE address_hash = $1",
        address_hash(address),
    )
    assert hashes == 1
    statuses = await db.fetch(
        "SELECT email_id, status FROM campaign.emails WHERE candidate_id = $1", candidate_id
    )
    assert {r["email_id"]: r["status"] for r in statuses} == {
        sent.email_id: "sent",
        pending: "cancelled",
    }
    assert await counts_of(api, campaign.campaign_id) == counts_before
    details = await db.fetch(
        "SELECT kind, detail FROM campaign.delivery_events WHERE email_id = $1 ORDER BY id",
        sent.email_id,
    )
    assert [(r["kind"], json.loads(r["detail"])) for r in details] == [
        ("opened", {"erased": True}),
        ("clicked", {"erased": True}),
        ("bounced", {"permanent": False, "code": 452, "erased": True}),
    ]
    other_body = await db.fetchval(
        "SELECT body FROM campaign.emails WHERE email_id = $1", other.email_id
    )
    assert "Other" in other_body  # the other recipient keeps their email

    again = await api.delete(f"/api/candidates/{candidate_id}")
    assert again.status_code == 204, again.text
    after = (await api.get(f"/api/candidates/{candidate_id}/export")).json()
    assert after["erased_at"] is not None
    assert after["address_erased"] is True
    assert after["profile"]["full_name"] == "(erased)"
    assert {e["subject"] for e in after["emails"]} == {"(erased)"}
    assert after["profile"]["skills"] == []  # her profile, skills included, is gone
    assert [c["matched_skills"] for c in after["campaigns"]] == [[], []]

    # An import of the same address (any case) skips it.
    csv = tmp_path / "again.csv"
    csv.write_text(f"full_name,email\n{name.title()},{address.upper()}\n", encoding="utf-8")
    async with db.acquire() as conn:
        result = await import_csv(conn, csv, CANDIDATES)
    assert (result.imported, result.updated, result.rejected) == (0, 0, 0)
    assert result.skipped == [RowSkipped(2, "erased")]
    assert await tables_holding(db, name, address) == {}


async def test_an_erased_address_added_behind_the_imports_back_is_never_selected(
    db: asyncpg.Pool, tag: str
) -> None:
    address = f"yuri-{tag}@example.com"
    skill = f"rust-{tag}"
    job_id = await add_job(db, f"Rust Engineer {tag}", skills=[skill])
    campaign_id = await add_campaign(db, job_id)
    kept = await add_candidate(db, "Kept One", email=f"kept-{tag}@example.com", skills=[skill])
    await db.execute(
        "INSERT INTO campaign.erased_addresses (address_hash) VALUES ($1)", address_hash(address)
    )
    # Written straight into the table (a seed, another tool): the hash still keeps it out.
    await add_candidate(db, "Yuri Back", email=address.upper(), skills=[skill], years=30)
    slots = Slots(skills=[skill])
    async with db.acquire() as conn:
        found = await search_candidates(conn, slots, limit=10)
        extracted = await extract_candidates(
            conn, slots, job_id, campaign_id, window_days=90, limit=10
        )
        counted = await count_matches(conn, slots, Contact(None, 90), cap=100)
    assert [m.candidate_id for m in found] == [kept]
    assert [m.candidate_id for m in extracted] == [kept]
    assert (counted.matched, counted.reachable) == (1, 1)


async def test_the_hash_sql_computes_is_the_one_python_computes(db: asyncpg.Pool) -> None:
    addresses = [
        "ada@example.com",
        "  Ada.Lovelace@EXAMPLE.com\t\n",
        "JOSÉ.Núñez@Correo.ES",  # non-ASCII letters: both leave them as they are
        "ÄRGER@straße.de",
        "o'brien+jobs@example.ie",
    ]
    rows = await db.fetch(
        "SELECT a, campaign.address_hash(a) AS h FROM unnest($1::text[]) AS u(a)", addresses
    )
    assert {r["a"]: r["h"] for r in rows} == {a: address_hash(a) for a in addresses}
    assert len({address_hash(a) for a in addresses}) == len(addresses)


async def test_only_the_admin_erases_or_exports_and_an_unknown_candidate_is_404(
    api: httpx.AsyncClient, gateway: Gateway, make_key: MakeKey, db: asyncpg.Pool, tag: str
) -> None:
    candidate_id = await add_candidate(db, "Wanda Kept", email=f"wanda-{tag}@example.com")
    recruiter = await make_key("workflows", "review", user="rita-recruiter")
    async with gateway.client(recruiter) as client:
        refused = [
            await client.delete(f"/api/candidates/{candidate_id}"),
            await client.get(f"/api/candidates/{candidate_id}/export"),
        ]
    assert [r.status_code for r in refused] == [403, 403]
    assert "admin" in refused[0].json()["detail"]
    assert await db.fetchval(
        "SELECT erased_at IS NULL FROM campaign.candidates WHERE candidate_id = $1", candidate_id
    )
    unknown = uuid.uuid4()
    missing = [
        await api.delete(f"/api/candidates/{unknown}"),
        await api.get(f"/api/candidates/{unknown}/export"),
    ]
    assert [r.status_code for r in missing] == [404, 404]
    assert str(unknown) in missing[0].json()["detail"]
    assert (await api.get("/api/candidates/not-an-id/export")).status_code == 422
