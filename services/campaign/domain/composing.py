"""Outreach email drafts from a Jinja2 template, the candidate and job fields a draft may use,
and the footer the system always adds: who we are, why we write, where we found the candidate,
and the unsubscribe link. The model's drafts are in `prompts.py`, the signed links in `links.py`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from shared.settings import Settings

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_TEMPLATE = "default.txt.j2"
MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 5_000


class DraftError(Exception):
    """A draft could not be produced; `reason` says why, for the reviewer and the logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemplateFailed(DraftError):
    """The template is broken (syntax, unknown field, unsafe code) or rendered no subject."""


class ModelAnswerRejected(DraftError):
    """The model's answer is not the JSON draft we asked for, or contains what only we may add."""


@dataclass(frozen=True)
class Draft:
    subject: str
    body: str


@dataclass(frozen=True)
class SenderIdentity:
    """Who the email is from: shown in From, the greeting's signature and the footer."""

    name: str
    email: str
    company: str
    postal_address: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SenderIdentity:
        return cls(
            name=settings.sender_name,
            email=settings.sender_email,
            company=settings.sender_company,
            postal_address=settings.sender_postal_address,
        )


class CandidateProfile(BaseModel):
    """The candidate fields a draft may use; `model_validate(dict(row))` takes a database row."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    full_name: str
    first_name: str | None = None
    city: str | None = None
    country: str | None = None
    seniority: str | None = None
    years_experience: int | None = None
    skills: list[str] = Field(default_factory=list)
    headline: str | None = Field(None, description="Written by the candidate: untrusted.")
    summary: str | None = Field(None, description="Written by the candidate: untrusted.")
    found_via: str | None = Field(None, description="Where we found their details.")


class JobOpening(BaseModel):
    """The job fields a draft may use; `model_validate(dict(row))` takes a database row."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    job_id: uuid.UUID
    external_ref: str | None = None
    title: str
    team: str | None = None
    city: str | None = None
    country: str | None = None
    remote: bool = False
    seniority: str | None = None
    skills: list[str] = Field(default_factory=list)
    description: str = ""


def greeting_name(candidate: CandidateProfile) -> str:
    return one_line(candidate.first_name or "") or one_line(candidate.full_name)


def matched_skills(candidate: CandidateProfile, job: JobOpening) -> list[str]:
    """The job's skills the candidate has, in the job's order (the job lists what matters first)."""
    have = {skill.casefold() for skill in candidate.skills}
    return [skill for skill in job.skills if skill.casefold() in have]


def one_line(text: str) -> str:
    """Collapse whitespace: a newline in a candidate's city must not break the subject line."""
    return " ".join(text.split())


# ---- Template mode ---------------------------------------------------------------------------

_SAFE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")


def template_candidates(job: JobOpening) -> list[str]:
    """Template names to try, most specific first. A reference that is not a plain file-name
    fragment is skipped, so an imported job's reference cannot point outside the folder."""
    refs = [job.external_ref, str(job.job_id)]
    names = [
        f"job-{ref}.txt.j2" for ref in refs if ref and _SAFE_REF.match(ref) and ".." not in ref
    ]
    return [*names, DEFAULT_TEMPLATE]


def template_context(
    candidate: CandidateProfile, job: JobOpening, sender: SenderIdentity
) -> dict[str, Any]:
    """Every field a template may use. StrictUndefined makes any other name an error."""
    optional = [candidate.city, job.city, candidate.found_via, job.team]
    city, job_city, found_via, team = (one_line(v) if v else None for v in optional)
    return {
        "first_name": greeting_name(candidate),
        "full_name": one_line(candidate.full_name),
        "city": city,
        "job_title": one_line(job.title),
        "job_city": job_city,
        "team": team,
        "remote": job.remote,
        "matched_skills": [one_line(s) for s in matched_skills(candidate, job)],
        "years": candidate.years_experience,
        "found_via": found_via,
        "sender_name": sender.name,
        "sender_company": sender.company,
    }


class TemplateComposer:
    """Renders `Subject: ...`, a blank line, then the body, from the job's template.

    The environment is sandboxed because templates are edited by operators, not developers, and
    autoescape is off because the result is plain text, not HTML.
    """

    def __init__(self, templates_dir: Path = TEMPLATES_DIR) -> None:
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(templates_dir),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain-text email: HTML escaping would corrupt it
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def compose(
        self, candidate: CandidateProfile, job: JobOpening, sender: SenderIdentity
    ) -> Draft:
        context = template_context(candidate, job, sender)
        try:
            template = self._env.select_template(template_candidates(job))
            rendered = template.render(context)
        except jinja2.TemplateError as exc:
            raise TemplateFailed(f"template for job {job.job_id}: {exc}") from exc
        return split_rendered(rendered)


def split_rendered(rendered: str) -> Draft:
    head, _, body = rendered.lstrip().partition("\n")
    if not head.startswith("Subject:"):
        raise TemplateFailed("a template must start with a 'Subject: ...' line")
    subject = one_line(head.removeprefix("Subject:"))
    body = body.strip("\n").rstrip()
    if not subject or len(subject) > MAX_SUBJECT_CHARS or not body.strip():
        raise TemplateFailed("the template rendered an empty or too long subject, or no body")
    return Draft(subject=subject, body=body)


# ---- Model mode ------------------------------------------------------------------------------


# ---- Footer and unsubscribe ------------------------------------------------------------------


@dataclass(frozen=True)
class FooterContext:
    sender: SenderIdentity
    job_title: str
    found_via: str | None
    unsubscribe_url: str


def footer_text(context: FooterContext) -> str:
    """Says who we are, why we write and where we found their details (GDPR Art. 14 asks for the
    source when the data was not collected from the person) and how to opt out."""
    sender = context.sender
    if context.found_via:
        source = f"We found your contact details via {one_line(context.found_via)}."
    else:
        source = "Reply to this email and we will tell you where we found your contact details."
    return "\n".join(
        [
            "-- ",
            f"{sender.name}, {sender.company}",
            sender.postal_address,
            "",
            f"Why you are receiving this: we are recruiting for the {one_line(context.job_title)} "
            f"role and think your experience may fit. {source} We use your details only to "
            "contact you about roles like this one (legitimate interest, GDPR Art. 6(1)(f)).",
            f"Not interested? Unsubscribe with one click: {context.unsubscribe_url}",
        ]
    )


def finalise(draft: Draft, context: FooterContext) -> Draft:
    """The draft with the footer appended; idempotent, so finalising twice adds one footer."""
    footer = footer_text(context)
    body = draft.body.rstrip()
    if body.endswith(footer):
        return draft
    return Draft(subject=draft.subject, body=f"{body}\n\n{footer}\n")
