-- The inference service's token accounting: one row per language-model call, cache hits included.
CREATE SCHEMA IF NOT EXISTS inference;

CREATE TABLE inference.model_calls (
    id                 bigserial        PRIMARY KEY,
    correlation_id     text,
    purpose            text,                     -- who asked: 'simple_answer', 'intent', 'email_draft', ...
    model              text             NOT NULL,
    prompt_tokens      integer          NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens  integer          NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    cost               numeric(14, 8)   NOT NULL DEFAULT 0 CHECK (cost >= 0),   -- in USD
    cached             boolean          NOT NULL DEFAULT false,
    latency_ms         double precision CHECK (latency_ms >= 0),
    status             text             NOT NULL,   -- 'ok', or why it failed ('error', 'timeout', ...)
    error              text,
    created_at         timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX model_calls_created ON inference.model_calls (created_at);
CREATE INDEX model_calls_correlation ON inference.model_calls (correlation_id);
