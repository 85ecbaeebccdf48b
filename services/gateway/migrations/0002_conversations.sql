-- The assistant's conversations (POST /api/ai-assistant/chat): each belongs to the user of the key
-- that started it, and keeps its turns: the message, and the answer as the client got it.
CREATE TABLE gateway.conversations (
    conversation_id  text        PRIMARY KEY,
    owner            text        NOT NULL,
    title            text        NOT NULL,          -- the first message, shortened
    turns            integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX conversations_owner ON gateway.conversations (owner, updated_at DESC, conversation_id);

CREATE TABLE gateway.conversation_turns (
    conversation_id  text        NOT NULL REFERENCES gateway.conversations ON DELETE CASCADE,
    turn             integer     NOT NULL CHECK (turn > 0),
    message          text        NOT NULL,
    kind             text        NOT NULL,
    answer           jsonb       NOT NULL,          -- the chat answer, as returned
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, turn)
);
