"""The follow-up sequence a campaign request asks for, in English, German or Spanish: "with 2
follow-ups", "and follow up after 3 and 5 days", "mit zwei Nachfassmails", "con 2 seguimientos a
los 4 días". The answer is each follow-up's wait in working days after the step before it (the
campaign's `follow_up_days`); a count without days gets `DEFAULT_WAITS`."""

from __future__ import annotations

import re

from shared.contracts.campaign import MAX_FOLLOW_UP_WAIT_DAYS, MAX_FOLLOW_UPS

DEFAULT_WAITS = (3, 5, 7)  # working days: a common recruiting cadence
_CUE = re.compile(
    r"(?<![\w])(?:follow[- ]?ups?|follow(?:ing)? up|nachfass\w*|nachhak\w*|erinnerung(?:en)?"
    r"|seguimientos?|recordatorios?)(?![\w])"
)
_COUNTS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3,
    "eine": 1, "einer": 1, "einem": 1, "zwei": 2, "drei": 3,
    "un": 1, "uno": 1, "una": 1, "dos": 2, "tres": 3,
}  # fmt: skip
_COUNT_BEFORE = re.compile(
    r"(?<![\w])(\d{1,2}|" + "|".join(_COUNTS) + r")\s+(?:more\s+|weitere[nr]?\s+|m[aá]s\s+)?$"
)
_DAYS = re.compile(r"(?<![\w])(\d{1,2})(?![\w])")
_DAY_WORD = re.compile(
    r"(?<![\w])(?:(?:working |business )?days?|(?:werk|arbeits)?tage?n?|d[ií]as?)"
)
_SENTENCE_END = re.compile(r"[.;!?]|(?<![\w])(?:about|for|zur|für|sobre|para)(?![\w])")


def follow_up_request(low: str) -> tuple[list[int], str]:
    """The waits `low` (a lower-cased message) asks for, and `low` with that phrase blanked so its
    numbers are not read as a limit or years; no cue: `([], low)`."""
    cue = _CUE.search(low)
    if cue is None:
        return [], low
    start, end = cue.start(), cue.end()
    count_match = _COUNT_BEFORE.search(low[max(0, start - 20) : start])
    count = None
    if count_match is not None:
        word = count_match.group(1)
        count = int(word) if word.isdigit() else _COUNTS[word]
        start = max(0, start - 20) + count_match.start()
    waits, end = _waits_after(low, end)
    if not waits:
        waits = list(DEFAULT_WAITS[: max(1, min(count or 1, MAX_FOLLOW_UPS))])
    elif count is not None and count > len(waits):  # "2 follow-ups after 4 days": 4 each
        waits += [waits[-1]] * (count - len(waits))
    waits = [min(max(wait, 1), MAX_FOLLOW_UP_WAIT_DAYS) for wait in waits[:MAX_FOLLOW_UPS]]
    return waits, low[:start] + " " * (end - start) + low[end:]


def _waits_after(low: str, pos: int) -> tuple[list[int], int]:
    """The numbers of days after the cue, up to the end of its phrase ("after 3 and 5 days"), and
    where the phrase ends; none when no day word follows them."""
    stop = _SENTENCE_END.search(low, pos)
    window_end = min(stop.start() if stop else len(low), pos + 60)
    window = low[pos:window_end]
    day_word = None
    for candidate in _DAY_WORD.finditer(window):
        day_word = candidate  # the last day word of the phrase
    if day_word is None:
        return [], pos
    numbers = [int(m.group(1)) for m in _DAYS.finditer(window, 0, day_word.start())]
    return numbers, (pos + day_word.end()) if numbers else pos
