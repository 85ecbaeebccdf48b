"""Score the intent detector on labelled messages: `make eval-intent`, or
`python -m services.intent.evaluate [FILE.jsonl ...] [--show-errors]`.

Prints mode and intent accuracy, and precision/recall/F1 per slot and overall (micro-averaged over
slot values: each skill is one value). Exits 1 when a file is missing or malformed.
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
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FILES = [REPO.parent / "shared" / "eval" / "intent_dev.jsonl"]
SLOTS = ("skills", "location", "seniority", "min_years_experience", "job_title", "limit")


def slot_items(slots: dict[str, Any] | None) -> set[tuple[str, str]]:
    """Slots as comparable (name, value) pairs; strings compare case-insensitively."""
    items: set[tuple[str, str]] = set()
    for name, value in (slots or {}).items():
        if value in (None, [], ""):
            continue
        values = value if isinstance(value, list) else [value]
        items |= {(name, str(v).strip().lower()) for v in values}
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

    def add(self, example: Example, detector: IntentDetector) -> None:
        detection = detector.detect(example.text)
        self.total += 1
        self.mode_right += detection.mode == example.mode
        self.intent_right += detection.intent == example.intent
        predicted = slot_items(detection.slots.model_dump())
        gold = slot_items(example.slots)
        for name, _ in predicted & gold:
            self.tp[name] += 1
        for name, _ in predicted - gold:
            self.fp[name] += 1
        for name, _ in gold - predicted:
            self.fn[name] += 1
        if detection.mode != example.mode or predicted != gold:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intent.evaluate")
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--show-errors", action="store_true", help="list every wrong message")
    args = parser.parse_args(argv)
    detector = build_detector(Settings())
    for path in args.files:
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 1
        score = Score()
        by_language: dict[str, Score] = {}
        for example in load_examples([path]):
            score.add(example, detector)
            by_language.setdefault(example.language, Score()).add(example, detector)
        print(score.report(str(path)))
        for language, part in sorted(by_language.items()):
            mode = part.mode_right / part.total
            f1 = Score.prf(sum(part.tp.values()), sum(part.fp.values()), sum(part.fn.values()))[2]
            print(
                f"  [{language}] {part.total} messages: mode accuracy {mode:.3f}, slot f1 {f1:.3f}"
            )
        if args.show_errors and score.errors:
            print("\n".join(score.errors))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
