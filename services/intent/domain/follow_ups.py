"""Follow-ups: a message that refers back to the conversation's last search or campaign request
and means that request again, changed.

- A refinement keeps the request and changes some of its slots: "same but in Munich", "only
  those with 5+ years", "what about seniors?", "dasselbe in Hamburg", "solo los de Madrid".
- "Email them" turns the last search into a campaign for the same people: "email them about the
  Staff Backend role", "schreib ihnen wegen der Data-Engineer-Stelle", "escríbeles sobre ...".

Whether a message is a follow-up shows in the message itself (it opens like one, or it says
"them"), so the intent service reads the conversation's last turn only for such messages.
"""

from __future__ import annotations

import re
from typing import Literal

from shared.contracts.intent import Slots

FollowUp = Literal["refine", "email_them"]

# Requests a follow-up can refer back to: both carry an audience.
FOLLOWED_INTENTS = frozenset({"candidate_search", "email_campaign"})

_REFINE = re.compile(
    r"""^\W*(?:
        # English
        (?:and\s+|but\s+|ok\s+|okay\s+)?(?:the\s+)?same\b
      | (?:and\s+)?(?:what|how)\s+about\b
      | (?:and|but|now|then)\s+(?:in|for|with|only|just|without)\b
      | (?:and\s+|but\s+|now\s+)?(?:only|just)\s+(?:those|these|the\s+ones|them|ones|people)\b
      | (?:and\s+|but\s+|now\s+)?(?:only|just)\s+(?:the\s+)?
            (?:juniors?|seniors?|mids?|staff|leads?|principals?)\b
        # German
      | (?:und\s+|aber\s+)?(?:das\s*selbe|dasselbe|das\s+gleiche|die\s+gleiche|genauso|gleiches?)\b
      | (?:und\s+|aber\s+|jetzt\s+)?(?:nur|bloß|lediglich)\s+(?:die|diejenigen|solche|jene|noch)\b
      | (?:und|aber|jetzt)\s+(?:in|für|mit|ohne)\b
      | (?:und\s+)?(?:wie\s+sieht\s+es|was\s+ist\s+mit|wie\s+wäre\s+es\s+mit)\b
        # Spanish
      | (?:y\s+|pero\s+)?(?:lo\s+mismo|igual|lo\s+propio)\b
      | (?:y\s+|pero\s+|ahora\s+)?(?:s[oó]lo|solamente|[uú]nicamente)\s+
            (?:los|las|aquellos|aquellas|a\s+los|a\s+las|con)\b
      | (?:y|pero|ahora)\s+(?:en|para|con|sin)\b
      | (?:y\s+)?(?:qu[eé]\s+tal|qu[eé]\s+hay\s+de)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)

_EMAIL_THEM = re.compile(
    r"""(?:
        # English: email them, write to them, reach out to those people, send them an email
        \b(?:e-?mail|mail|write\s+to|contact|reach\s+out\s+to|message|send|ping)\s+
            (?:them|those|these)\b
        # German: schreib ihnen, maile ihnen, kontaktiere sie, diese anschreiben
      | \b(?:schreib(?:e|en|t)?|mail(?:e|en)?|kontaktier(?:e|en)?)\s+(?:ihnen|denen|sie|diese)\b
      | \b(?:ihnen|denen|diesen)\s+(?:eine\s+)?(?:e-?mail|mail|nachricht)\b
      | \b(?:sie|die|diese)\s+(?:alle\s+)?an(?:schreiben|mailen)\b
        # Spanish: escríbeles, envíales un correo, contáctalos, mándales
      | \b(?:escr[ií]bel[eo]s|env[ií]al[eo]s|m[aá]ndal[eo]s|cont[aá]ctal[eo]s)\b
      | \b(?:escribir|enviar|mandar|contactar)l[eo]s\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def follow_up_kind(message: str) -> FollowUp | None:
    """What kind of follow-up the message reads as, on its own; None for a message that stands
    alone. Whether it really follows something depends on the conversation (`follows`)."""
    if _EMAIL_THEM.search(message):
        return "email_them"
    if _REFINE.match(message):
        return "refine"
    return None


def follows(kind: FollowUp | None, previous_intent: str | None) -> bool:
    """Whether a follow-up of `kind` refers back to a turn of `previous_intent`."""
    return kind is not None and previous_intent in FOLLOWED_INTENTS


def followed_intent(kind: FollowUp, previous_intent: str) -> str:
    """The intent of the follow-up: a campaign for "email them", else the earlier request's."""
    return "email_campaign" if kind == "email_them" else previous_intent


def merge_slots(earlier: Slots, later: Slots) -> Slots:
    """The earlier request's slots, with what the later message says instead: "same but in
    Munich" changes the city, "only those with 5+ years" adds a minimum, an answer to "who
    should I contact?" fills the audience. What the later message leaves empty stays."""
    merged = earlier.model_dump()
    merged.update({k: v for k, v in later.model_dump().items() if v not in (None, [])})
    return Slots.model_validate(merged)
