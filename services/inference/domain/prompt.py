"""The system prompt that leads every model call, and the messages a model is sent."""

from __future__ import annotations

from shared.contracts.inference import ModelRequest

# The gateway serves cached answers without this text: the contract (`shared.inference`) holds its
# version, part of every cache key, and the tokens it adds to a request. Changing it means bumping
# SYSTEM_PROMPT_VERSION; tests/unit/test_inference_domain.py fails until both are updated.
SYSTEM_PROMPT = (
    "You are an assistant for technical recruiters. Answer questions about recruiting, sourcing, "
    "interviewing and candidate outreach accurately and concisely, and write clear, friendly, "
    "professional text when asked. If you do not know something, say so."
)


def chat_messages(request: ModelRequest) -> list[dict[str, str]]:
    """The messages for the chat-completions API: the system prompt, then the conversation."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        *({"role": m.role, "content": m.content} for m in request.messages),
    ]
