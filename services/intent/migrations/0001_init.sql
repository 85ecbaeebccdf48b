-- The intent service's own records: every detected intent, and the events it still has to publish.
CREATE SCHEMA IF NOT EXISTS intent;

-- One row per message the intent service classified; the intent id is the one carried by
-- `intent.detected`, so a workflow started from it can be traced back here.
CREATE TABLE intent.intent_log (
    intent_id               uuid             PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id         text,
    message                 text             NOT NULL,
    language                text,                             -- BCP 47 tag, e.g. 'en', 'de'
    mode                    text             NOT NULL CHECK (mode IN ('simple', 'workflow')),
    intent                  text,                             -- e.g. 'email_campaign'; NULL in simple mode
    confidence              double precision CHECK (confidence >= 0 AND confidence <= 1),
    slots                   jsonb            NOT NULL DEFAULT '{}'::jsonb,
    needs_clarification     boolean          NOT NULL DEFAULT false,
    clarification_question  text,
    correlation_id          text,
    created_at              timestamptz      NOT NULL DEFAULT now(),
    CHECK (NOT needs_clarification OR clarification_question IS NOT NULL)
);

CREATE INDEX intent_log_conversation ON intent.intent_log (conversation_id, created_at);
CREATE INDEX intent_log_created ON intent.intent_log (created_at);

-- Transactional outbox: rows are written in the same transaction as the state they announce, and a
-- relay publishes them to Kafka in id order, then sets published_at.
CREATE TABLE intent.outbox (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    key           text,                                        -- Kafka message key (keeps order per key)
    payload       jsonb       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,    -- string map: trace context, content type
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX outbox_unpublished ON intent.outbox (id) WHERE published_at IS NULL;
