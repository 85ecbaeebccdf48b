-- Questions workflow runs wait on, by the conversation whose message started the run: the
-- conversation's next message is the answer (kept from `workflow.questions`; closed when
-- the run stops waiting on it).
CREATE TABLE intent.run_questions (
    run_id           uuid        PRIMARY KEY,
    conversation_id  text        NOT NULL,
    question         jsonb       NOT NULL,          -- {text, field, choices, ...}
    asked_at         timestamptz NOT NULL DEFAULT now(),
    answered_at      timestamptz
);

CREATE INDEX run_questions_open ON intent.run_questions (conversation_id, asked_at)
    WHERE answered_at IS NULL;
