"""Outreach email drafts from a Jinja2 template in the candidate's language, the candidate and
job fields a draft may use, and the footer the system always adds: who we are, the GDPR Art. 14
notice on a first email (why we write, where we found the candidate, their rights; see
`privacy.py`), and the unsubscribe link. The model's drafts are in `prompts.py`, the signed links
in `links.py`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from services.campaign.domain.privacy import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    Language,
    PrivacyPolicy,
    candidate_language,
    notice_lines,
    unsubscribe_line,
)
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
    """Who the email is from: shown in From, the greeting's signature and the footer; `privacy`
    is who the footer's notice names as the data's controller (None: the sender's company, at
    the sender's address)."""

    name: str
    email: str
    company: str
    postal_address: str
    privacy: PrivacyPolicy | None = None
    # One identity per recruiter mailbox (services/campaign/mailer.py, `Mailboxes`): the user
    # whose campaigns it sends (None: the default identity), its zone (its day for the daily
    # cap), and its signature.
    user: str | None = None
    timezone: str = "UTC"
    signature: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> SenderIdentity:
        return cls(
            name=settings.sender_name,
            email=settings.sender_email,
            company=settings.sender_company,
            postal_address=settings.sender_postal_address,
            privacy=PrivacyPolicy.from_settings(settings),
            timezone=settings.sender_timezone,
        )

    @property
    def privacy_policy(self) -> PrivacyPolicy:
        return self.privacy or PrivacyPolicy(controller=self.company, contact_email=self.email)


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
    language: Language | None = Field(None, description="None: the country's (see privacy.py).")

    @property
    def writing_language(self) -> Language:
        """The language their email and its footer are written in."""
        return candidate_language(self.language, self.country)


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


def template_candidates(job: JobOpening, language: Language = DEFAULT_LANGUAGE) -> list[str]:
    """Template names to try, most specific first: in the candidate's language
    (`job-<ref>.de.txt.j2`, ..., `default.de.txt.j2`) before English (the unmarked names), since
    a candidate must be able to read the email. A reference that is not a plain file-name
    fragment is skipped, so an imported job's reference cannot point outside the folder."""
    refs = [job.external_ref, str(job.job_id)]
    stems = [f"job-{ref}" for ref in refs if ref and _SAFE_REF.match(ref) and ".." not in ref]
    english = [f"{stem}.txt.j2" for stem in stems] + [DEFAULT_TEMPLATE]
    if language == DEFAULT_LANGUAGE:
        return english
    return [f"{stem}.{language}.txt.j2" for stem in [*stems, "default"]] + english


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
        "sender_signature": sender.signature.strip() or f"{sender.name}\n{sender.company}",
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
            names = template_candidates(job, candidate.writing_language)
            template = self._env.select_template(names)
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
    """What the footer says. `notice` False leaves the Art. 14 notice out (a follow-up in a
    thread whose first email carried it): the sender and the unsubscribe line remain."""

    sender: SenderIdentity
    job_title: str
    found_via: str | None
    unsubscribe_url: str
    language: Language = DEFAULT_LANGUAGE
    notice: bool = True


def footer_text(context: FooterContext) -> str:
    """Who we are and how to opt out, in the candidate's language; on a first email also why we
    write, where we found their details (GDPR Art. 14 asks for the source when the data was not
    collected from the person), who holds which data for what and how long, and their rights."""
    sender = context.sender
    lines = ["-- ", f"{sender.name}, {sender.company}", sender.postal_address, ""]
    if context.notice:
        found_via = one_line(context.found_via) if context.found_via else None
        policy = sender.privacy_policy
        lines += notice_lines(policy, context.language, one_line(context.job_title), found_via)
    lines.append(unsubscribe_line(context.language, context.unsubscribe_url))
    return "\n".join(lines)


def footer_variants(context: FooterContext) -> list[FooterContext]:
    """The context's footer in every language, with and without the notice, its own first."""
    others = [
        replace(context, language=language, notice=notice)
        for notice in (context.notice, not context.notice)
        for language in LANGUAGES
    ]
    return [context, *(other for other in others if other != context)]


def footer_in(body: str, context: FooterContext) -> FooterContext | None:
    """Which variant of the context's footer the body ends with, if any: a stored draft keeps
    the language and notice it was drafted with, whoever finalises it later."""
    text = body.rstrip()
    return next((v for v in footer_variants(context) if text.endswith(footer_text(v))), None)


def without_footer(body: str, context: FooterContext) -> str:
    """The body with every variant of the context's footer removed, wherever it stands."""
    for variant in footer_variants(context):
        body = body.replace(footer_text(variant), "")
    return body


def finalise(draft: Draft, context: FooterContext) -> Draft:
    """The draft with the footer appended; idempotent, so finalising twice adds one footer. A
    body that already ends with this footer in another language or without the notice is left
    as it is: the sender and a review re-finalise drafts without knowing either."""
    if footer_in(draft.body, context) is not None:
        return draft
    return Draft(subject=draft.subject, body=f"{draft.body.rstrip()}\n\n{footer_text(context)}\n")
