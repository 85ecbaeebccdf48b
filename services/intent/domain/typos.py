"""Misspelt skills and cities ("pyhton", "barcelna"): the one vocabulary term a word is a single
typo away from."""

from __future__ import annotations

# Typos are corrected only in words this long, against terms this long (a shorter word is too often
# another word one letter away: "reach" and "react"), and only with the first letter right.
_TYPO_MIN_LENGTH = 5
_TYPO_ANY_EDIT_LENGTH = 6  # below this only two swapped letters count ("sclaa"), not a change


def _one_typo_apart(word: str, term: str) -> bool:
    """Whether `word` is `term` with one letter dropped, added, changed, or two letters swapped."""
    if word == term or word[:1] != term[:1] or abs(len(word) - len(term)) > 1:
        return False
    if len(word) == len(term):
        diff = [i for i, (a, b) in enumerate(zip(word, term, strict=True)) if a != b]
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            return word[diff[0]] == term[diff[1]] and word[diff[1]] == term[diff[0]]
        return len(diff) == 1 and len(term) >= _TYPO_ANY_EDIT_LENGTH
    if min(len(word), len(term)) < _TYPO_ANY_EDIT_LENGTH - 1:
        return False
    short, long = sorted((word, term), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


class TypoIndex:
    """Single-word terms (skills or cities) by first letter, to find the one a misspelt word
    means; a word one typo away from two different terms is left alone."""

    def __init__(self, terms: dict[str, str], known: set[str]) -> None:
        self._known = known
        self._by_letter: dict[str, list[tuple[str, str]]] = {}
        for term, canonical in terms.items():
            if len(term) >= _TYPO_MIN_LENGTH and term.isalpha():
                self._by_letter.setdefault(term[0], []).append((term, canonical))

    def find(self, word: str) -> tuple[str, str] | None:
        """(term, canonical) `word` is a misspelling of, if exactly one canonical fits."""
        if len(word) < _TYPO_MIN_LENGTH or word in self._known:
            return None
        hits = {
            canonical: term
            for term, canonical in self._by_letter.get(word[0], [])
            if _one_typo_apart(word, term)
        }
        if len(hits) != 1:
            return None
        ((canonical, term),) = hits.items()
        return term, canonical
