"""The intent classifier: TF-IDF features (words and character n-grams, which carry across German
compounds and Spanish inflections) and logistic regression, trained by scikit-learn from the
labelled examples that ship with the service in `data/examples/*.jsonl`."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import hstack
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from services.intent.domain.language import detect_language

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "examples"


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    mode: str
    language: str = "en"  # the row's `lang`, else the language detect_language reads
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
                        language=row.get("lang") or detect_language(row["text"]),
                        slots=row.get("slots"),
                    )
                )
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{number}: not a labelled example ({exc})") from exc
    return examples


def builtin_examples() -> list[Example]:
    return load_examples(sorted(EXAMPLES_DIR.glob("*.jsonl")))


@dataclass(frozen=True)
class _Block:
    """One vectorizer's part of the trained model, for scoring one message: its analyzer (the
    vectorizer's own), and for each term of its vocabulary the term's column in the feature
    matrix and its inverse document frequency."""

    analyze: Callable[[str], list[str]]
    columns: dict[str, tuple[int, float]]


class IntentClassifier:
    """Predicts the intent of a message with a probability.

    scikit-learn trains the model. A prediction reads the trained model directly: the
    vectorizers' analyzers, vocabularies and IDF weights, and the regression's coefficients.
    Their `transform` and `predict_proba` compute the same numbers, but validate their input on
    every call (about 1 ms, several times the arithmetic) and the service classifies one message
    at a time. `library_probabilities` is the library's path; a unit test holds the two equal."""

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
        self._blocks: list[_Block] = []
        offset = 0
        for vectorizer in self._vectorizers:
            vocabulary: dict[str, int] = vectorizer.vocabulary_
            idf = vectorizer.idf_
            columns = {term: (offset + i, float(idf[i])) for term, i in vocabulary.items()}
            self._blocks.append(_Block(vectorizer.build_analyzer(), columns))
            offset += len(vocabulary)
        self._coef = np.asarray(self._model.coef_, dtype=np.float64)
        self._intercept = np.asarray(self._model.intercept_, dtype=np.float64)

    def predict(self, text: str) -> tuple[str, float]:
        """The most likely intent of `text`, with its probability."""
        probabilities = self.probabilities(text)
        best = int(probabilities.argmax())
        return self.intents[best], float(probabilities[best])

    def probabilities(self, text: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The probability of each intent (in `intents` order) for `text`: sublinear TF times
        IDF, L2-normalised per vectorizer, then the regression's logistic (two intents) or
        softmax (more)."""
        decision = self._intercept.copy()
        for block in self._blocks:
            counts = Counter(block.analyze(text))
            found = [(block.columns.get(term), n) for term, n in counts.items()]
            weights = [(c[0], (1.0 + math.log(n)) * c[1]) for c, n in found if c is not None]
            if not weights:
                continue
            norm = math.sqrt(sum(w * w for _, w in weights))
            columns = [column for column, _ in weights]
            values = np.fromiter((w / norm for _, w in weights), np.float64, len(weights))
            decision += self._coef[:, columns] @ values
        if len(self.intents) == 2:
            positive = float(expit(decision[0]))
            return np.array([1.0 - positive, positive])
        result: np.ndarray[Any, np.dtype[np.float64]] = softmax(decision)
        return result

    def library_probabilities(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The same probabilities through scikit-learn's transform and predict_proba."""
        features = hstack([v.transform(texts) for v in self._vectorizers]).tocsr()
        result: np.ndarray[Any, np.dtype[np.float64]] = self._model.predict_proba(features)
        return result
