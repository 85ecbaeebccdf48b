"""Which writer a recipient's draft gets: the model's answer when it is a valid draft, else the
job's template; no model configured means the template, without asking."""

from __future__ import annotations

import json
import uuid

import pytest

from services.campaign.domain.composing import (
    CandidateProfile,
    JobOpening,
    SenderIdentity,
    TemplateComposer,
)
from services.campaign.domain.links import UnsubscribeLinks
from services.campaign.domain.prompts import DRAFT_SYSTEM_PROMPT
from services.campaign.handlers.drafting import Drafter
from services.campaign.model import ModelUnavailable
from shared.contracts.inference import ChatMessage

SENDER = SenderIdentity("Rita Recruiter", "rita@example.com", "Example Ltd", "1 Road, Berlin")
LINKS = UnsubscribeLinks("https://example.com", "a-test-secret-that-is-long-enough-32")
ADA = CandidateProfile(full_name="Ada Lovelace", first_name="Ada", skills=["python"])
JOB = JobOpening(job_id=uuid.uuid4(), title="Platform Engineer", skills=["python"])
VALID = json.dumps({"subject": "A platform role", "body": "Hi Ada,\n\nInterested?\n\nRita"})


class FakeModel:
    def __init__(self, answer: str | None) -> None:
        self.answer_text = answer
        self.asked: list[list[ChatMessage]] = []

    async def answer(self, messages: list[ChatMessage], correlation_id: str) -> str:
        self.asked.append(messages)
        if self.answer_text is None:
            raise ModelUnavailable("model_unavailable: the endpoint failed")
        return self.answer_text


def drafter(model: FakeModel | None) -> Drafter:
    return Drafter(TemplateComposer(), SENDER, LINKS, model=model)


async def test_a_valid_answer_is_the_draft() -> None:
    model = FakeModel(VALID)
    draft, mode = await drafter(model).compose(ADA, JOB, "corr")
    assert (mode, draft.subject) == ("model", "A platform role")
    assert model.asked[0][0] == ChatMessage(role="system", content=DRAFT_SYSTEM_PROMPT)


@pytest.mark.parametrize(
    "answer",
    [
        "Sure! Here it is.",
        json.dumps({"subject": "Hi", "body": "Unsubscribe at https://evil.example"}),
        json.dumps({"subject": "Hi"}),
        None,  # no answer at all
    ],
)
async def test_an_unusable_answer_falls_back_to_the_template(answer: str | None) -> None:
    draft, mode = await drafter(FakeModel(answer)).compose(ADA, JOB, "corr")
    assert mode == "template"
    assert "Platform Engineer" in draft.subject
    assert "evil" not in draft.body


async def test_without_a_model_the_template_drafts() -> None:
    draft, mode = await drafter(None).compose(ADA, JOB, "corr")
    assert mode == "template"
    assert draft.body.startswith("Hi Ada")


def test_the_footer_is_the_systems() -> None:
    email_id = uuid.uuid4()
    d = drafter(None)
    draft = d.finish(d.from_template(ADA, JOB), ADA, JOB, email_id)
    assert draft.body.count(LINKS.url(email_id)) == 1
