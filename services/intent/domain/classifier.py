"""The intent classifier: TF-IDF features (words and character n-grams, which carry across German
compounds and Spanish inflections) and logistic regression, trained from the labelled examples that
ship with the service in `data/examples/*.jsonl`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "examples"


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    mode: str
    language: str = "en"
    slots: dict[str, Any] | None = None


def load_examples(paths: Iterable[Path]) -> list[Example]:
    examples: list[Example] = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                examples.append(
                    Example(
                        text=row["text"],
                        intent=row["intent"],
                        mode=row["mode"],
                        language=row.get("lang", "en"),
                        slots=row.get("slots"),
                    )
                )
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{number}: not a labelled example ({exc})") from exc
    return examples


def builtin_examples() -> list[Example]:
    return load_examples(sorted(EXAMPLES_DIR.glob("*.jsonl")))


class IntentClassifier:
    """Predicts the intent of a message with a probability.

    The two vectorizers and the model are called directly rather than through a Pipeline and
    FeatureUnion: for one message at a time, their dispatch (joblib, output wrappers) cost more
    than the maths."""

    def __init__(self, examples: list[Example]) -> None:
        if len({e.intent for e in examples}) < 2:
            raise ValueError("the classifier needs labelled examples of at least two intents")
        texts = [e.text for e in examples]
        self._vectorizers = [
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ]
        features = hstack([v.fit_transform(texts) for v in self._vectorizers]).tocsr()
        self._model = LogisticRegression(C=20.0, max_iter=2_000)
        self._model.fit(features, [e.intent for e in examples])
        self.intents: list[str] = [str(c) for c in self._model.classes_]

    def predict(self, text: str) -> tuple[str, float]:
        return self.predict_many([text])[0]

    def predict_many(self, texts: list[str]) -> list[tuple[str, float]]:
        """The most likely intent of each text, with its probability."""
        features = hstack([v.transform(texts) for v in self._vectorizers]).tocsr()
        probabilities = self._model.predict_proba(features)
        best = probabilities.argmax(axis=1)
        return [
            (self.intents[int(b)], float(row[int(b)]))
            for b, row in zip(best, probabilities, strict=True)
        ]
