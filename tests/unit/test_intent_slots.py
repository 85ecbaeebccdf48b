"""Slot extraction, on messages written for these tests (not the evaluation sets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.intent.domain.language import detect_language
from services.intent.domain.slots import SlotExtractor
from services.intent.domain.vocabulary import load_vocabulary
from shared.contracts.intent import Slots


@pytest.fixture(scope="module")
def extractor() -> SlotExtractor:
    return SlotExtractor(load_vocabulary())


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Email all senior Golang devs in Berlin about the Staff Backend Engineer role",
            Slots(
                skills=["go"],
                location="berlin",
                seniority="senior",
                job_title="staff backend engineer",
            ),
        ),
        (
            "reach out to the top 15 Postgres and RoR people in munich with at least 3 years",
            Slots(
                skills=["postgresql", "ruby on rails"],
                location="munich",
                min_years_experience=3,
                limit=15,
            ),
        ),
        (
            "Contact k8s engineers with 7 years of Terraform experience in Dublin",
            Slots(skills=["kubernetes", "terraform"], location="dublin", min_years_experience=7),
        ),
        (
            "message 12 lead engineers in Paris regarding the Head of Platform search",
            Slots(location="paris", seniority="lead", job_title="head of platform", limit=12),
        ),
        (
            "Schreibe den 20 besten Junior-Python-Entwicklern in München wegen der Stelle als "
            "Backend-Entwickler",
            Slots(
                skills=["python"],
                location="münchen",
                seniority="junior",
                job_title="backend-entwickler",
                limit=20,
            ),
        ),
        (
            "Envía un correo a los desarrolladores sénior de TypeScript en Valencia con al menos "
            "4 años de experiencia",
            Slots(
                skills=["typescript"],
                location="valencia",
                seniority="senior",
                min_years_experience=4,
            ),
        ),
    ],
)
def test_slots(extractor: SlotExtractor, message: str, expected: Slots) -> None:
    assert extractor.extract(message) == expected


def test_a_seniority_word_inside_the_job_title_is_not_the_audience(
    extractor: SlotExtractor,
) -> None:
    slots = extractor.extract("Email Java developers in Oslo about the Principal Architect opening")
    assert slots.seniority is None
    assert slots.job_title == "principal architect"


def test_ambiguous_skill_words_need_context(extractor: SlotExtractor) -> None:
    assert extractor.extract("go ahead and email the react devs in Rome").skills == ["react"]
    assert extractor.extract("email the Go people in Rome").skills == ["go"]


def test_a_role_word_without_a_title_noun_is_no_job_title(extractor: SlotExtractor) -> None:
    assert (
        extractor.extract("Invite Java developers in Warsaw to the Backend role").job_title is None
    )


def test_vocabulary_extends_without_code_changes(tmp_path: Path) -> None:
    (tmp_path / "skills.json").write_text(json.dumps({"cobol": ["cobol", "cobol-85"]}))
    (tmp_path / "cities.json").write_text(json.dumps({"atlantis": {"aliases": ["atlantis"]}}))
    extractor = SlotExtractor(load_vocabulary(tmp_path))
    slots = extractor.extract("email COBOL-85 developers in Atlantis")
    assert slots.skills == ["cobol"]
    assert slots.location == "atlantis"


def test_a_missing_vocabulary_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="INTENT_VOCABULARY_DIR"):
        load_vocabulary(tmp_path / "nope")


@pytest.mark.parametrize(
    ("message", "language"),
    [
        ("What is a good reply rate for outreach?", "en"),
        ("Was ist eine gute Antwortquote für Anschreiben?", "de"),
        ("¿Cuál es una buena tasa de respuesta?", "es"),
        ("Berlin", "en"),
    ],
)
def test_language(message: str, language: str) -> None:
    assert detect_language(message) == language
