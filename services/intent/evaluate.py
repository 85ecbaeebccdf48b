"""Score the intent detector on labelled messages: `make eval-intent`, or
`python -m services.intent.evaluate [FILE.jsonl ...] [--show-errors]`.

Prints mode and intent accuracy, and precision/recall/F1 per slot and overall (micro-averaged over
slot values: each skill is one value), for the whole file and per language. A file given with
`--named-slots` labels only some slots per row (`intent_dev_v2.jsonl`): only the slots a row names
are scored there. Exits 1 when a file is missing or malformed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.intent.app import build_detector
from services.intent.domain.classifier import Example, load_examples
from services.intent.domain.detector import IntentDetector
from services.intent.domain.vocabulary import Vocabulary
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILES = [REPO.parent / "shared" / "eval" / "intent_dev.jsonl"]
SLOTS = (
    "skills",
    "location",
    "seniority",
    "min_years_experience",
    "job_title",
    "limit",
    "country",
    "remote",
    "exclude_skills",
)


def slot_items(
    slots: dict[str, Any] | None, vocabulary: Vocabulary | None = None
) -> set[tuple[str, str]]:
    """Slots as comparable (name, value) pairs; strings compare case-insensitively, and a city
    by its canonical name: the detector keeps the spelling the recruiter wrote ("ámsterdam"),
    which the campaign service reads as the same city, while the labels name it in English."""
    items: set[tuple[str, str]] = set()
    for name, value in (slots or {}).items():
        if value in (None, [], ""):
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            text = str(v).strip().lower()
            if name == "location" and vocabulary is not None:
                text = vocabulary.cities.get(text, text)
            items.add((name, text))
    return items


@dataclass
class Score:
    total: int = 0
    mode_right: int = 0
    intent_right: int = 0
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, example: Example, detector: IntentDetector, named_only: bool = False) -> None:
        """Score one message; with `named_only`, only the slots its label names."""
        detection = detector.detect(example.text)
        self.total += 1
        self.mode_right += detection.mode == example.mode
        self.intent_right += detection.intent == example.intent
        vocabulary = detector.extractor.vocabulary
        said = detection.slots.model_dump()
        if named_only:
            said = {name: value for name, value in said.items() if name in (example.slots or {})}
        predicted = slot_items(said, vocabulary)
        gold = slot_items(example.slots, vocabulary)
        for name, _ in predicted & gold:
            self.tp[name] += 1
        for name, _ in predicted - gold:
            self.fp[name] += 1
        for name, _ in gold - predicted:
            self.fn[name] += 1
        if detection.intent != example.intent or predicted != gold:
            self.errors.append(
                f"- {example.text}\n    expected {example.mode}/{example.intent} {sorted(gold)}\n"
                f"    got      {detection.mode}/{detection.intent} ({detection.confidence:.2f}) "
                f"{sorted(predicted)}"
            )

    @staticmethod
    def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    def report(self, title: str) -> str:
        lines = [
            f"{title}: {self.total} messages",
            f"  mode accuracy    {self.mode_right / self.total:.3f}",
            f"  intent accuracy  {self.intent_right / self.total:.3f}",
            f"  {'slot':<22}{'precision':>10}{'recall':>8}{'f1':>7}{'support':>9}",
        ]
        for name in SLOTS:
            p, r, f = self.prf(self.tp[name], self.fp[name], self.fn[name])
            support = self.tp[name] + self.fn[name]
            lines.append(f"  {name:<22}{p:>10.3f}{r:>8.3f}{f:>7.3f}{support:>9}")
        p, r, f = self.prf(sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values()))
        lines.append(f"  {'all slots (micro)':<22}{p:>10.3f}{r:>8.3f}{f:>7.3f}")
        return "\n".join(lines)


def language_table(parts: dict[str, Score]) -> str:
    """Mode and intent accuracy and per-slot precision/recall/F1, one column group per language."""
    languages = sorted(parts)
    head = "".join(f"{f'[{lang}] {parts[lang].total}':>22}" for lang in languages)
    lines = [f"  {'per language':<22}{head}"]
    for label, attr in (("mode accuracy", "mode_right"), ("intent accuracy", "intent_right")):
        cells = "".join(
            f"{getattr(parts[lang], attr) / parts[lang].total:>22.3f}" for lang in languages
        )
        lines.append(f"  {label:<22}{cells}")
    lines.append(f"  {'slot (p / r / f1)':<22}")
    for name in (*SLOTS, "all"):
        cells = ""
        for lang in languages:
            part = parts[lang]
            if name == "all":
                counts = (sum(part.tp.values()), sum(part.fp.values()), sum(part.fn.values()))
            else:
                counts = (part.tp[name], part.fp[name], part.fn[name])
            p, r, f = Score.prf(*counts)
            cells += f"{f'{p:.2f} / {r:.2f} / {f:.2f}':>22}"
        lines.append(f"  {name:<22}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intent.evaluate")
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument(
        "--named-slots",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a set whose rows label only some slots: score only those (repeatable)",
    )
    parser.add_argument("--show-errors", action="store_true", help="list every wrong message")
    args = parser.parse_args(argv)
    detector = build_detector(Settings())
    sets = [(path, False) for path in args.files] + [(path, True) for path in args.named_slots]
    for path, named_only in sets:
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 1
        score = Score()
        by_language: dict[str, Score] = {}
        for example in load_examples([path]):
            score.add(example, detector, named_only)
            by_language.setdefault(example.language, Score()).add(example, detector, named_only)
        title = f"{path} (only the slots each row names)" if named_only else str(path)
        print(score.report(title))
        print(language_table(by_language))
        if args.show_errors and score.errors:
            print("\n".join(score.errors))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
