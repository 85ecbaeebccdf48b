"""Vocabularies of skills, cities, countries, seniority words and job-title words, loaded from JSON
files so they can be extended without code changes (INTENT_VOCABULARY_DIR adds a folder of more)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "data" / "vocabulary"


@dataclass
class Vocabulary:
    """Surface form (lower-case) to canonical name, per kind."""

    skills: dict[str, str] = field(default_factory=dict)
    ambiguous_skills: set[str] = field(default_factory=set)
    cities: dict[str, str] = field(default_factory=dict)
    # Country name (English, German, Spanish) to its ISO 3166-1 alpha-2 code, upper-case.
    countries: dict[str, str] = field(default_factory=dict)
    seniority: dict[str, str] = field(default_factory=dict)
    title_nouns: set[str] = field(default_factory=set)
    role_markers: set[str] = field(default_factory=set)
    # Words that are a whole job title on their own, short as they are: "sre", "qa", "devops".
    titles: set[str] = field(default_factory=set)

    def merge_folder(self, folder: Path) -> None:
        """Add the vocabulary files found in `folder`; later folders win on conflicts."""

        def read(name: str) -> Any:
            path = folder / name
            return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

        if skills := read("skills.json"):
            for canonical, aliases in skills.items():
                for alias in {canonical, *aliases}:
                    self.skills[alias.lower()] = canonical.lower()
        if ambiguous := read("ambiguous_skills.json"):
            self.ambiguous_skills |= {a.lower() for a in ambiguous}
        if cities := read("cities.json"):
            for canonical, info in cities.items():
                for alias in {canonical, *info.get("aliases", [])}:
                    self.cities[alias.lower()] = canonical.lower()
        if countries := read("countries.json"):
            for code, info in countries.items():
                for name in info.get("names", []):
                    self.countries[name.lower()] = code.upper()
        if seniority := read("seniority.json"):
            for level, words in seniority.items():
                for word in words:
                    self.seniority[word.lower()] = level
        if titles := read("titles.json"):
            self.title_nouns |= {w.lower() for w in titles.get("title_nouns", [])}
            self.role_markers |= {w.lower() for w in titles.get("role_markers", [])}
            self.titles |= {w.lower() for w in titles.get("titles", [])}


def load_vocabulary(extra: Path | None = None) -> Vocabulary:
    vocabulary = Vocabulary()
    vocabulary.merge_folder(BUILTIN_DIR)
    if extra is not None:
        if not extra.is_dir():
            raise ValueError(f"INTENT_VOCABULARY_DIR={extra} is not a folder")
        vocabulary.merge_folder(extra)
    return vocabulary
