"""The privacy rules of outreach to sourced candidates: the language we write to a candidate in,
the GDPR Art. 14 notice the first email carries (in English, German and Spanish), the hash that
keeps an erased address from ever being contacted again, and which stored data is personal (what
an erasure clears). Plain Python; `repository/privacy.py` applies the erasure and the export.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from shared.settings import Settings

Language = Literal["en", "de", "es"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "en"
LANGUAGE_NAMES: Mapping[Language, str] = {"en": "English", "de": "German", "es": "Spanish"}

# Where German or Spanish is the language of work (ISO 3166-1 alpha-2, as candidates store it).
GERMAN_COUNTRIES = frozenset({"DE", "AT", "CH", "LI"})
SPANISH_COUNTRIES = frozenset(
    {
        "ES", "MX", "GT", "HN", "SV", "NI", "CR", "PA", "CU", "DO", "PR", "CO", "VE", "EC", "PE",
        "BO", "CL", "AR", "PY", "UY",
    }
)  # fmt: skip


def candidate_language(language: str | None, country: str | None) -> Language:
    """The language to write to a candidate in: the one stored for them when it is one we write,
    else their country's (German in DE, AT, CH and LI; Spanish in Spain and Spanish-speaking
    Latin America), else English. Switzerland has four languages: German is its largest."""
    for known in LANGUAGES:
        if language == known:
            return known
    code = (country or "").strip().upper()
    if code in GERMAN_COUNTRIES:
        return "de"
    if code in SPANISH_COUNTRIES:
        return "es"
    return DEFAULT_LANGUAGE


# ---- The address hash kept after an erasure ---------------------------------------------------

# Only ASCII letters are lower-cased, and only these characters trimmed: PostgreSQL's
# `campaign.address_hash` (migration 0009) does exactly the same whatever the database's locale.
_TRIMMED = " \t\r\n"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def normalise_address(address: str) -> str:
    """The address as it is hashed: trimmed and lower-cased."""
    return address.strip(_TRIMMED).translate(_ASCII_LOWER)


def address_hash(address: str) -> str:
    """sha256 (hex) of the normalised address: what is kept of an erased candidate's address so
    that an import, an extraction or a search can recognise it without holding it."""
    return hashlib.sha256(normalise_address(address).encode("utf-8")).hexdigest()


# ---- What an erasure leaves ------------------------------------------------------------------

ERASED_DOMAIN = "erased.invalid"  # RFC 2606: can never be delivered to
ERASED_NAME = "(erased)"
ERASED_TEXT = "(erased)"
ERASED_ERROR = "cancelled: the candidate's data was erased"

# Personal data on `campaign.candidates`: every column an erasure sets to NULL (full_name and
# email are NOT NULL and get `ERASED_NAME` and `pseudonym_address`, skills the empty list).
# Kept: the id, `source` (how the row came, e.g. 'csv-import') and the timestamps.
ERASED_CANDIDATE_COLUMNS = (
    "external_ref", "first_name", "city", "country", "timezone", "seniority", "years_experience",
    "headline", "summary", "found_via", "language",
)  # fmt: skip

# Keys of a delivery event's detail that say what happened, not to whom: kept by an erasure so
# the campaign's figures (bounces by kind, SMTP codes) stay right. Everything else (a bounce's
# or relay's message, which often quote the address, a clicked URL, a reply) is removed.
KEPT_EVENT_DETAIL_KEYS = (
    "permanent", "code", "smtp_code", "soft", "message_id", "classification", "erased",
)  # fmt: skip


def pseudonym_address(candidate_id: uuid.UUID) -> str:
    """The address an erased candidate's rows keep: unique (the table wants it), undeliverable,
    and saying nothing about the person."""
    return f"erased-{candidate_id}@{ERASED_DOMAIN}"


def kept_detail(detail: Mapping[str, object]) -> dict[str, object]:
    """A delivery event's detail without its personal data (see `KEPT_EVENT_DETAIL_KEYS`)."""
    return {key: value for key, value in detail.items() if key in KEPT_EVENT_DETAIL_KEYS}


# ---- The Art. 14 notice ----------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyPolicy:
    """Who is responsible for the candidate's data and what the notice tells them."""

    controller: str
    contact_email: str
    dpo_email: str | None = None
    retention_months: int = 24
    supervisory_authority: str | None = None
    notice_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PrivacyPolicy:
        return cls(
            controller=settings.privacy_controller or settings.sender_company,
            contact_email=settings.privacy_contact_email or settings.sender_email,
            dpo_email=settings.privacy_dpo_email,
            retention_months=settings.privacy_retention_months,
            supervisory_authority=settings.privacy_supervisory_authority,
            notice_url=settings.privacy_notice_url,
        )


@dataclass(frozen=True)
class Wording:
    """A footer's sentences in one language; `{...}` are filled by `footer_lines`."""

    why: str  # {job_title}
    source: str  # {found_via}
    no_source: str
    controller: str  # {controller} {contact}
    dpo: str  # {dpo}
    use: str  # {months}
    rights: str
    authority: str  # {authority}
    more: str  # {url}
    unsubscribe: str  # {url}


WORDING: Mapping[Language, Wording] = {
    "en": Wording(
        why="Why you are receiving this: we are recruiting for the {job_title} role and think "
        "your experience may fit.",
        source="We found your contact details via {found_via}.",
        no_source="Reply to this email and we will tell you where we found your contact details.",
        controller="Your data: {controller} ({contact}",
        dpo="; data protection officer: {dpo}",
        use=") holds your name, contact details and professional profile (skills, experience, "
        "location) to contact you about roles like this one, on the basis of legitimate "
        "interest (GDPR Art. 6(1)(f)), and keeps them for {months} months after our last "
        "contact.",
        rights="You may object to this at any time, and ask for access to your data or its "
        "erasure, by replying to this email; you may also complain to a supervisory authority",
        authority=" ({authority})",
        more="Details: {url}",
        unsubscribe="Not interested? Unsubscribe with one click: {url}",
    ),
    "de": Wording(
        why="Warum Sie diese E-Mail erhalten: Wir besetzen die Stelle {job_title} und denken, "
        "dass Ihre Erfahrung passen könnte.",
        source="Ihre Kontaktdaten haben wir über {found_via} gefunden.",
        no_source="Antworten Sie auf diese E-Mail, und wir sagen Ihnen, wo wir Ihre "
        "Kontaktdaten gefunden haben.",
        controller="Ihre Daten: {controller} ({contact}",
        dpo="; Datenschutzbeauftragte/r: {dpo}",
        use=") verarbeitet Ihren Namen, Ihre Kontaktdaten und Ihr berufliches Profil "
        "(Fähigkeiten, Erfahrung, Ort), um Sie zu Stellen wie dieser zu kontaktieren, auf "
        "Grundlage berechtigten Interesses (Art. 6 Abs. 1 lit. f DSGVO), und speichert sie bis zu "
        "{months} Monate nach unserem letzten Kontakt.",
        rights="Sie können dem jederzeit widersprechen und Auskunft über Ihre Daten oder deren "
        "Löschung verlangen, indem Sie auf diese E-Mail antworten; zudem können Sie sich bei "
        "einer Aufsichtsbehörde beschweren",
        authority=" ({authority})",
        more="Mehr dazu: {url}",
        unsubscribe="Kein Interesse? Mit einem Klick abmelden: {url}",
    ),
    "es": Wording(
        why="Por qué recibe este correo: buscamos a alguien para el puesto de {job_title} y "
        "creemos que su experiencia puede encajar.",
        source="Encontramos sus datos de contacto en {found_via}.",
        no_source="Responda a este correo y le diremos dónde encontramos sus datos de contacto.",
        controller="Sus datos: {controller} ({contact}",
        dpo="; delegado de protección de datos: {dpo}",
        use=") trata su nombre, sus datos de contacto y su perfil profesional (habilidades, "
        "experiencia, ubicación) para contactarle sobre puestos como este, sobre la base del "
        "interés legítimo (art. 6.1.f del RGPD), y los conserva durante {months} meses tras "
        "nuestro último contacto.",
        rights="Puede oponerse en cualquier momento y solicitar el acceso a sus datos o su "
        "supresión respondiendo a este correo; también puede presentar una reclamación ante una "
        "autoridad de control",
        authority=" ({authority})",
        more="Más información: {url}",
        unsubscribe="¿No le interesa? Darse de baja con un clic: {url}",
    ),
}


def notice_lines(
    policy: PrivacyPolicy, language: Language, job_title: str, found_via: str | None
) -> list[str]:
    """The Art. 14 notice, a few lines: why we write and where we found the details, then who
    holds which data for what, on which legal basis and for how long, then the candidate's
    rights (object, access, erasure, complaint). Every value is one line already."""
    words = WORDING[language]
    source = words.source.format(found_via=found_via) if found_via else words.no_source
    holder = words.controller.format(controller=policy.controller, contact=policy.contact_email)
    if policy.dpo_email:
        holder += words.dpo.format(dpo=policy.dpo_email)
    rights = words.rights
    if policy.supervisory_authority:
        rights += words.authority.format(authority=policy.supervisory_authority)
    rights += "."
    if policy.notice_url:
        rights += " " + words.more.format(url=policy.notice_url)
    return [
        f"{words.why.format(job_title=job_title)} {source}",
        holder + words.use.format(months=policy.retention_months),
        rights,
    ]


def unsubscribe_line(language: Language, url: str) -> str:
    return WORDING[language].unsubscribe.format(url=url)
