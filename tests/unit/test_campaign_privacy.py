"""Privacy rules: the language we write to a candidate in, the GDPR Art. 14 notice in English,
German and Spanish (every element it must hold), the short footer of a follow-up, drafts and
reviews that keep a draft's footer, the address hash, and what an erasure keeps of an event.
(tests/integration/test_candidate_privacy.py checks the hash against its SQL twin.)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from services.campaign.domain.composing import (
    CandidateProfile,
    Draft,
    FooterContext,
    JobOpening,
    SenderIdentity,
    TemplateComposer,
    finalise,
    footer_text,
    template_candidates,
)
from services.campaign.domain.importing import CANDIDATES, ImportResult, RowSkipped, parse_csv
from services.campaign.domain.privacy import (
    LANGUAGES,
    Language,
    PrivacyPolicy,
    address_hash,
    candidate_language,
    kept_detail,
    normalise_address,
    pseudonym_address,
)
from services.campaign.domain.prompts import DRAFT_SYSTEM_PROMPT, model_messages
from services.campaign.domain.review import Edit, edited_draft
from services.campaign.importing import format_report
from shared.settings import Settings

POLICY = PrivacyPolicy(
    controller="Acme Robotics GmbH",
    contact_email="privacy@acme.example",
    dpo_email="dpo@acme.example",
    retention_months=18,
    supervisory_authority="Hamburg Commissioner for Data Protection",
    notice_url="https://acme.example/privacy",
)
SENDER = SenderIdentity(
    name="Grace Hopper",
    email="grace@acme.example",
    company="Acme Robotics",
    postal_address="1 Harbour Road, 20457 Hamburg, Germany",
    privacy=POLICY,
)
URL = "https://jobs.acme.example/u/token"


def footer(
    language: Language = "en", *, notice: bool = True, found_via: str | None = "GitHub"
) -> str:
    context = FooterContext(SENDER, "Staff Backend Engineer", found_via, URL, language, notice)
    return footer_text(context)


# ---- Language ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "country", "expected"),
    [
        (None, "DE", "de"),
        (None, "AT", "de"),
        (None, "CH", "de"),
        (None, "LI", "de"),
        (None, "ES", "es"),
        (None, "MX", "es"),
        (None, "AR", "es"),
        (None, "CO", "es"),
        (None, "BR", "en"),  # Portuguese: we do not write it, so English
        (None, "FR", "en"),
        (None, "GB", "en"),
        (None, None, "en"),
        (None, " de ", "de"),
        ("en", "DE", "en"),  # the candidate's own language wins
        ("es", "DE", "es"),
        ("fr", "DE", "de"),  # one we do not write: the country's
    ],
)
def test_the_language_is_the_candidates_else_their_countrys(
    language: str | None, country: str | None, expected: str
) -> None:
    assert candidate_language(language, country) == expected


def test_templates_are_tried_in_the_candidates_language_first() -> None:
    job = JobOpening(job_id=uuid.UUID(int=1), external_ref="BE-42", title="Engineer")
    assert template_candidates(job) == [
        "job-BE-42.txt.j2", f"job-{job.job_id}.txt.j2", "default.txt.j2",
    ]  # fmt: skip
    assert template_candidates(job, "de")[:3] == [
        "job-BE-42.de.txt.j2", f"job-{job.job_id}.de.txt.j2", "default.de.txt.j2",
    ]  # fmt: skip
    assert template_candidates(job, "de")[3:] == template_candidates(job)


@pytest.mark.parametrize(
    ("country", "greeting", "subject"),
    [
        ("DE", "Hallo Ada,", "Staff Backend Engineer in Hamburg bei Acme Robotics"),
        ("ES", "Hola Ada:", "Staff Backend Engineer en Hamburg | Acme Robotics"),
        ("GB", "Hi Ada,", "Staff Backend Engineer in Hamburg at Acme Robotics"),
    ],
)
def test_the_default_template_speaks_the_candidates_language(
    country: str, greeting: str, subject: str
) -> None:
    candidate = CandidateProfile(full_name="Ada Lovelace", first_name="Ada", country=country)
    job = JobOpening(job_id=uuid.uuid4(), title="Staff Backend Engineer", city="Hamburg")
    draft = TemplateComposer().compose(candidate, job, SENDER)
    assert draft.body.startswith(greeting)
    assert draft.subject == subject


def test_the_model_is_told_which_language_to_write() -> None:
    candidate = CandidateProfile(full_name="Ada Lovelace", country="AT")
    job = JobOpening(job_id=uuid.uuid4(), title="Staff Backend Engineer")
    system, user = model_messages(candidate, job, SENDER)
    assert "language" in DRAFT_SYSTEM_PROMPT
    assert system.content == DRAFT_SYSTEM_PROMPT
    data = user.content.split("<recruiting_data>\n")[1].split("\n</recruiting_data>")[0]
    assert json.loads(data)["language"] == "German"
    english = CandidateProfile(full_name="Ada Lovelace", country="AT", language="en")
    assert '"language": "English"' in model_messages(english, job, SENDER)[1].content


# ---- The notice -------------------------------------------------------------------------------

# Per language, the words that carry each element the notice must hold (Art. 14 GDPR).
ELEMENTS: dict[Language, dict[str, str]] = {
    "en": {
        "purpose": "to contact you about roles like this one",
        "legal basis": "legitimate interest (GDPR Art. 6(1)(f))",
        "categories": "your name, contact details and professional profile",
        "source": "We found your contact details via GitHub.",
        "retention": "18 months",
        "object": "object",
        "access": "access to your data",
        "erasure": "erasure",
        "complaint": "complain to a supervisory authority (Hamburg Commissioner",
        "unsubscribe": f"Unsubscribe with one click: {URL}",
    },
    "de": {
        "purpose": "um Sie zu Stellen wie dieser zu kontaktieren",
        "legal basis": "berechtigten Interesses (Art. 6 Abs. 1 lit. f DSGVO)",
        "categories": "Ihren Namen, Ihre Kontaktdaten und Ihr berufliches Profil",
        "source": "Ihre Kontaktdaten haben wir über GitHub gefunden.",
        "retention": "18 Monate",
        "object": "widersprechen",
        "access": "Auskunft",
        "erasure": "Löschung",
        "complaint": "bei einer Aufsichtsbehörde beschweren (Hamburg Commissioner",
        "unsubscribe": f"Mit einem Klick abmelden: {URL}",
    },
    "es": {
        "purpose": "para contactarle sobre puestos como este",
        "legal basis": "interés legítimo (art. 6.1.f del RGPD)",
        "categories": "su nombre, sus datos de contacto y su perfil profesional",
        "source": "Encontramos sus datos de contacto en GitHub.",
        "retention": "18 meses",
        "object": "oponerse",
        "access": "el acceso a sus datos",
        "erasure": "supresión",
        "complaint": "reclamación ante una autoridad de control (Hamburg Commissioner",
        "unsubscribe": f"Darse de baja con un clic: {URL}",
    },
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_notice_holds_every_element_in_each_language(language: Language) -> None:
    text = footer(language)
    for element, words in ELEMENTS[language].items():
        assert words in text, f"{language}: no {element} ({words!r})"
    for fact in (
        "Acme Robotics GmbH",  # the controller
        "privacy@acme.example",  # how to reach them
        "dpo@acme.example",
        "Staff Backend Engineer",  # why we write
        "https://acme.example/privacy",
        SENDER.postal_address,
    ):
        assert fact in text, f"{language}: no {fact!r}"
    assert len(text.splitlines()) <= 9  # short: a few lines, not a legal page


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_notice_leaves_out_what_is_not_configured(language: Language) -> None:
    bare = SenderIdentity("Grace Hopper", "grace@acme.example", "Acme Robotics", "1 Road")
    text = footer_text(FooterContext(bare, "Engineer", None, URL, language))
    assert (
        "Acme Robotics (grace@acme.example)" in text
    )  # defaults: the sender's company and address
    assert "dpo" not in text.lower()
    assert "Datenschutzbeauftragte" not in text
    assert "http" not in text.replace(URL, "")  # no notice link
    assert "24" in text  # the default retention
    without_source = {"en": "tell you where", "de": "wo wir Ihre", "es": "dónde encontramos"}
    assert without_source[language] in text


def test_the_policy_comes_from_the_settings_with_the_senders_defaults() -> None:
    settings = Settings(sender_company="Acme", sender_email="jobs@acme.example")
    assert PrivacyPolicy.from_settings(settings) == PrivacyPolicy("Acme", "jobs@acme.example")
    configured = Settings(
        privacy_controller="Acme Holding", privacy_contact_email="privacy@acme.example",
        privacy_dpo_email="dpo@acme.example", privacy_retention_months=6,
        privacy_supervisory_authority="BfDI", privacy_notice_url="https://acme.example/p",
    )  # fmt: skip
    assert PrivacyPolicy.from_settings(configured) == PrivacyPolicy(
        "Acme Holding", "privacy@acme.example", "dpo@acme.example", 6, "BfDI",
        "https://acme.example/p",
    )  # fmt: skip
    assert SenderIdentity.from_settings(configured).privacy_policy.controller == "Acme Holding"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_follow_up_carries_only_the_short_footer(language: Language) -> None:
    short = footer(language, notice=False)
    assert short.splitlines()[:3] == ["-- ", "Grace Hopper, Acme Robotics", SENDER.postal_address]
    assert ELEMENTS[language]["unsubscribe"] in short
    assert "privacy@acme.example" not in short
    assert "GitHub" not in short
    assert len(short.splitlines()) == 5


def test_a_body_keeps_the_footer_it_was_drafted_with() -> None:
    german = FooterContext(SENDER, "Staff Backend Engineer", "GitHub", URL, "de")
    drafted = finalise(Draft("Hallo", "Hallo Ada"), german)
    # The sender and a review do not know the language or whether this is a first email.
    default = FooterContext(SENDER, "Staff Backend Engineer", "GitHub", URL)
    assert finalise(drafted, default) == drafted
    assert (
        finalise(
            drafted, FooterContext(SENDER, "Staff Backend Engineer", "GitHub", URL, notice=False)
        )
        == drafted
    )
    edited = edited_draft(drafted, Edit(body=f"Hallo Ada, neu.\n\n{footer_text(default)}"), default)
    assert edited.body == f"Hallo Ada, neu.\n\n{footer_text(german)}\n"
    # Another job's footer is no footer of this one: it is appended.
    other = FooterContext(SENDER, "Data Engineer", "GitHub", URL)
    assert finalise(drafted, other).body.count("\n-- \n") == 2


# ---- Import -----------------------------------------------------------------------------------


def test_an_import_takes_a_language_and_refuses_one_we_do_not_write(tmp_path: Path) -> None:
    path = tmp_path / "candidates.csv"
    path.write_text(
        "full_name,email,language\nAda,ada@example.com,DE\nBo,bo@example.com,\nCy,cy@example.com,fr\n"
    )
    parsed = parse_csv(path, CANDIDATES)
    assert [(line, row.model_dump()["language"]) for line, row in parsed.rows] == [
        (2, "de"),
        (3, None),
    ]
    assert [(e.line, e.column) for e in parsed.errors] == [(4, "language")]


# ---- Hash and erasure -------------------------------------------------------------------------


def test_the_address_hash_is_sha256_of_the_trimmed_lower_cased_address() -> None:
    expected = hashlib.sha256(b"ada.lovelace@example.com").hexdigest()
    assert address_hash("ada.lovelace@example.com") == expected
    assert address_hash("  Ada.Lovelace@EXAMPLE.com\n") == expected
    assert address_hash("ada@example.org") != expected
    assert normalise_address("\tÄDA@Example.COM ") == "Äda@example.com"  # ASCII only, as SQL's


def test_an_erasure_keeps_what_happened_not_to_whom() -> None:
    detail = {
        "permanent": True,
        "code": 550,
        "message": "550 <ada@example.com> unknown",
        "url": "x",
    }
    assert kept_detail(detail) == {"permanent": True, "code": 550}
    candidate_id = uuid.uuid4()
    assert pseudonym_address(candidate_id) == f"erased-{candidate_id}@erased.invalid"


def test_the_import_report_lists_erased_addresses_it_skipped() -> None:
    result = ImportResult(
        imported=1, updated=0, errors=[], skipped=[RowSkipped(3, "erased"), RowSkipped(5, "erased")]
    )
    assert format_report(result, max_errors=1).splitlines() == [
        "imported 1, updated 0, rejected 0, skipped 2",
        "line 3: skipped (erased)",
        "... and 1 more",
    ]
