"""Load a deterministic, realistic demo data set (candidates and jobs) into the campaign schema.

The same `random_seed` always yields byte-identical rows; the word lists live in `seed_data.json`.
Run it alone with `python -m services.campaign.seed [--force]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg

from shared.errors import DependencyUnavailable
from shared.migrations import migrate
from shared.settings import Settings, get_settings

DEMO_SOURCE = "demo-seed"
DATA_FILE = Path(__file__).with_name("seed_data.json")
_JOB_NAMESPACE = uuid.UUID("6f1d4c1e-2b7a-4e0f-9a43-0c5de3d5e2a1")  # job ids: uuid5(title)
_LOCK_KEY = 0x5EED_CA3F  # serialises concurrent seeders
_LOCAL_NAME_SHARE = 0.7  # the rest of a city's people come from the international mix
_HISTORY_SECONDS = 3 * 365 * 24 * 3600  # candidates were added over the three years before epoch

CANDIDATE_COLUMNS = (
    "candidate_id", "external_ref", "full_name", "first_name", "email", "city", "country",
    "timezone", "seniority", "years_experience", "skills", "headline", "summary", "source",
    "found_via", "created_at", "updated_at",
)  # fmt: skip
JOB_COLUMNS = (
    "job_id", "external_ref", "title", "team", "city", "country", "remote", "seniority", "skills",
    "description", "status", "source", "created_at", "updated_at",
)  # fmt: skip
_PHRASE_KEYS = (
    "domains", "openings", "middles", "achievements", "junior_achievements", "closings",
    "found_via",
)  # fmt: skip
_SENIORITY_PREFIX = {
    "junior": "Junior ", "mid": "", "senior": "Senior ", "staff": "Staff ",
    "principal": "Principal ", "lead": "Lead ",
}  # fmt: skip
# Letters that Unicode decomposition does not reduce to ASCII (\u0131 is the Turkish dotless i).
_ASCII_FOLD = str.maketrans({"ł": "l", "\u0131": "i", "ß": "ss", "ø": "o", "æ": "ae", "œ": "oe"})

Row = tuple[object, ...]


@dataclass(frozen=True)
class SeedResult:
    """What one `seed` call loaded; `skipped` means the candidates table already had rows."""

    candidates: int
    jobs: int
    skipped: bool


class SeedError(RuntimeError):
    """The demo data cannot be (re)loaded as asked."""


@dataclass(frozen=True)
class _City:
    name: str
    country: str
    timezone: str
    weight: float
    locals: tuple[str, ...]


@dataclass(frozen=True)
class _Profile:
    weight: float
    roles: tuple[str, ...]
    core: tuple[str, ...]
    optional: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class _Job:
    title: str
    team: str
    city: str
    remote: bool
    seniority: str
    skills: tuple[str, ...]
    status: str
    mission: str


@dataclass(frozen=True)
class Catalogue:
    """The demo vocabulary: skills (canonical name -> display label), names, places, phrases."""

    epoch: datetime
    email_domains: tuple[str, ...]
    skills: dict[str, str]
    names: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    international_mix: dict[str, float]
    cities: tuple[_City, ...]
    profiles: tuple[_Profile, ...]
    phrases: dict[str, tuple[str, ...]]
    jobs: tuple[_Job, ...]

    def city(self, name: str) -> _City:
        return next(c for c in self.cities if c.name == name)


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{DATA_FILE.name}: expected a list of strings, got {value!r:.80}")
    return tuple(value)


@cache
def load_catalogue() -> Catalogue:
    """Read and check `seed_data.json` (once per process)."""
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    skills = {str(k): str(v) for k, v in raw["skills"].items()}
    catalogue = Catalogue(
        epoch=datetime.fromisoformat(raw["epoch"]),
        email_domains=_strs(raw["email_domains"]),
        skills=skills,
        names={k: (_strs(v["first"]), _strs(v["last"])) for k, v in raw["name_pools"].items()},
        international_mix={str(k): float(v) for k, v in raw["international_mix"].items()},
        cities=tuple(
            _City(c["city"], c["country"], c["timezone"], float(c["weight"]), _strs(c["locals"]))
            for c in raw["cities"]
        ),
        profiles=tuple(
            _Profile(
                float(p["weight"]),
                _strs(p["roles"]),
                _strs(p["core"]),
                tuple((str(s), float(w)) for s, w in p["optional"].items()),
            )
            for p in raw["profiles"]
        ),
        phrases={key: _strs(raw[key]) for key in _PHRASE_KEYS},
        jobs=tuple(_job(j) for j in raw["jobs"]),
    )
    _check(catalogue)
    return catalogue


def _job(raw: dict[str, Any]) -> _Job:
    fields = {name: str(raw[name]) for name in ("title", "team", "city", "seniority", "status")}
    return _Job(**fields, remote=bool(raw["remote"]), skills=_strs(raw["skills"]),
                mission=str(raw["mission"]))  # fmt: skip


def _check(cat: Catalogue) -> None:
    used = {s for p in cat.profiles for s in (*p.core, *(name for name, _ in p.optional))}
    used |= {s for job in cat.jobs for s in job.skills}
    pools = {pool for city in cat.cities for pool in city.locals} | set(cat.international_mix)
    cities = {c.name for c in cat.cities}
    problems = [f"unknown skill {s!r}" for s in sorted(used - set(cat.skills))]
    problems += [f"unknown name pool {p!r}" for p in sorted(pools - set(cat.names))]
    problems += [f"unknown city {j.city!r}" for j in cat.jobs if j.city not in cities]
    if problems:
        raise ValueError(f"{DATA_FILE.name}: " + "; ".join(problems))


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_ASCII_FOLD))
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())


def build_jobs(cat: Catalogue) -> list[Row]:
    """The demo jobs; ids are uuid5 of the title, so they never depend on the random seed."""
    rows: list[Row] = []
    for number, job in enumerate(cat.jobs, start=1):
        city = cat.city(job.city)
        where = f"{city.name}{' or remote' if job.remote else ''}"
        stack = _join([cat.skills[s] for s in job.skills])
        description = (
            f"Our {job.team} team is hiring a {job.title} ({where}). {job.mission} "
            f"You will work mostly with {stack}."
        )
        created = cat.epoch - timedelta(days=3 * number, hours=number)
        rows.append((
            uuid.uuid5(_JOB_NAMESPACE, job.title), f"demo-job-{number:02d}", job.title, job.team,
            city.name, city.country, job.remote, job.seniority, list(job.skills), description,
            job.status, DEMO_SOURCE, created, created,
        ))  # fmt: skip
    return rows


def _seniority(years: int, rng: random.Random) -> str:
    if years < 2:
        return "junior"
    if years < 6:
        return "junior" if years == 2 and rng.random() < 0.3 else "mid"
    if years < 10:
        return "mid" if years == 6 and rng.random() < 0.4 else "senior"
    if years < 14:
        return rng.choices(("senior", "staff", "lead"), (5, 3, 2))[0]
    return rng.choices(("senior", "staff", "principal", "lead"), (2, 4, 2, 3))[0]


class _CandidateFactory:
    """Draws one plausible person at a time from a seeded generator."""

    def __init__(self, cat: Catalogue, rng: random.Random) -> None:
        self.cat = cat
        self.rng = rng
        self.used_emails: set[str] = set()
        self.city_weights = [c.weight for c in cat.cities]
        self.mix = list(cat.international_mix)
        self.mix_weights = list(cat.international_mix.values())
        self.profile_weights = [p.weight for p in cat.profiles]

    def name(self, city: _City) -> tuple[str, str]:
        rng = self.rng
        if rng.random() < _LOCAL_NAME_SHARE:
            pool = rng.choice(city.locals)
        else:
            pool = rng.choices(self.mix, self.mix_weights)[0]
        firsts, lasts = self.cat.names[pool]
        first, last = rng.choice(firsts), rng.choice(lasts)
        if pool == "polish" and first.endswith("a") and last.endswith(("ski", "cki", "dzki")):
            last = last[:-1] + "a"  # Kowalski -> Anna Kowalska
        return first, last

    def email(self, first: str, last: str) -> str:
        f, lastname = _ascii(first), _ascii(last)
        local = self.rng.choice(
            (f"{f}.{lastname}", f"{f}{lastname}", f"{f[0]}.{lastname}", f"{f}_{lastname}")
        )
        domain = self.rng.choice(self.cat.email_domains)
        address, n = f"{local}@{domain}", 2
        while address in self.used_emails:
            address, n = f"{local}{n}@{domain}", n + 1
        self.used_emails.add(address)
        return address

    def summary(self, years: int, skills: list[str]) -> str:
        rng, phrases = self.rng, self.cat.phrases
        span = "less than a year" if years == 0 else "one year" if years == 1 else f"{years} years"
        domain = rng.choice(phrases["domains"])
        opening = rng.choice(phrases["openings"]).format(years=span, domain=domain)
        picked = [self.cat.skills[s] for s in rng.sample(skills, k=min(3, len(skills)))]
        middle = rng.choice(phrases["middles"]).format(skills=_join(picked))
        story = rng.choice(phrases["junior_achievements" if years < 3 else "achievements"])
        parts = (opening[0].upper() + opening[1:], middle, story, rng.choice(phrases["closings"]))
        return " ".join(parts)

    def row(self, number: int) -> Row:
        rng, cat = self.rng, self.cat
        candidate_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        city = rng.choices(cat.cities, self.city_weights)[0]
        first, last = self.name(city)
        years = min(int(rng.gammavariate(2.0, 3.2)), 35)
        seniority = _seniority(years, rng)
        profile = rng.choices(cat.profiles, self.profile_weights)[0]
        skills = list(profile.core) + [s for s, p in profile.optional if rng.random() < p]
        role = rng.choice(profile.roles)
        labels = ", ".join(cat.skills[s] for s in skills[:3])
        headline = f"{_SENIORITY_PREFIX[seniority]}{role} · {labels}"
        created = cat.epoch - timedelta(seconds=rng.randrange(_HISTORY_SECONDS))
        return (
            candidate_id, f"demo-cand-{number:05d}", f"{first} {last}", first,
            self.email(first, last), city.name, city.country, city.timezone, seniority, years,
            skills, headline, self.summary(years, skills), DEMO_SOURCE,
            rng.choice(cat.phrases["found_via"]), created, created,
        )  # fmt: skip


def build_candidates(cat: Catalogue, count: int, random_seed: int) -> list[Row]:
    """`count` candidate rows, identical for the same seed and count."""
    factory = _CandidateFactory(cat, random.Random(random_seed))
    return [factory.row(number) for number in range(1, count + 1)]


async def _delete_demo_rows(conn: asyncpg.Connection) -> None:
    try:
        await conn.execute("DELETE FROM campaign.candidates WHERE source = $1", DEMO_SOURCE)
        await conn.execute("DELETE FROM campaign.jobs WHERE source = $1", DEMO_SOURCE)
    except asyncpg.ForeignKeyViolationError as exc:
        raise SeedError(
            "cannot reload the demo data: campaigns or emails refer to demo candidates or jobs; "
            "delete those campaigns first, or start from an empty database"
        ) from exc


async def seed(
    conn: asyncpg.Connection,
    *,
    candidates: int = 10_000,
    random_seed: int = 42,
    force: bool = False,
) -> SeedResult:
    """Load the demo set unless candidates exist; `force` replaces earlier demo rows, only those."""
    if candidates < 0:
        raise ValueError("candidates must be zero or more")
    cat = load_catalogue()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        if not force and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM campaign.candidates)"):
            return SeedResult(candidates=0, jobs=0, skipped=True)
        if force:
            await _delete_demo_rows(conn)
        job_rows = build_jobs(cat)
        placeholders = ", ".join(f"${i}" for i in range(1, len(JOB_COLUMNS) + 1))
        # A job kept from an earlier load (candidates deleted by hand) stays as it is.
        await conn.executemany(
            f"INSERT INTO campaign.jobs ({', '.join(JOB_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
            " ON CONFLICT DO NOTHING",
            job_rows,
        )
        candidate_rows = build_candidates(cat, candidates, random_seed)
        await conn.copy_records_to_table(
            "candidates", schema_name="campaign", columns=CANDIDATE_COLUMNS, records=candidate_rows
        )
    return SeedResult(candidates=len(candidate_rows), jobs=len(job_rows), skipped=False)


async def seed_command(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate the campaign schema, seed it, and print what happened (a CLI entry point)."""
    try:
        conn = await asyncpg.connect(
            settings.database_url, timeout=settings.startup_timeout_seconds
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise DependencyUnavailable("DATABASE_URL", settings.database_url, reason) from exc
    started = time.perf_counter()
    try:
        await migrate(conn, ("campaign",))
        result = await seed(
            conn,
            candidates=getattr(args, "candidates", 10_000),
            random_seed=getattr(args, "random_seed", 42),
            force=getattr(args, "force", False),
        )
    finally:
        await conn.close()
    if result.skipped:
        print("campaign.candidates already has rows: nothing seeded (use --force to reload)")
    else:
        elapsed = time.perf_counter() - started
        print(f"seeded {result.candidates} candidates and {result.jobs} jobs in {elapsed:.2f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.campaign.seed", description=__doc__)
    parser.add_argument("--candidates", type=int, default=10_000, help="how many (default 10000)")
    parser.add_argument("--random-seed", type=int, default=42, help="same seed, same data")
    parser.add_argument("--force", action="store_true", help="replace earlier demo rows")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(seed_command(get_settings(), args))
    except (DependencyUnavailable, SeedError) as exc:
        print(f"seed: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
