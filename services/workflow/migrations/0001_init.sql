-- The workflow engine's durable state: runs, their step history, human waits and the signals that end
-- them, plus the outbox it publishes through and the inbox that makes its consumers idempotent.
CREATE SCHEMA IF NOT EXISTS workflow;

CREATE TABLE workflow.runs (
    run_id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_type       text        NOT NULL,
    definition_version  integer     NOT NULL CHECK (definition_version > 0),  -- kept for the run's life
    status              text        NOT NULL DEFAULT 'pending' CHECK (status IN (
                            'pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled',
                            'expired')),
    current_state       text,
    params              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    context             jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- data carried between steps
    intent_id           uuid        UNIQUE,     -- a run started from an intent: one per intent id
    idempotency_key     text        UNIQUE,     -- the same key on POST /api/workflows: the same run
    correlation_id      text,
    created_by          text,                   -- the acting user (API key owner) or the source system
    error               text,
    wake_at             timestamptz,            -- the engine's next timer: backoff, step or wait deadline
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    version             integer     NOT NULL DEFAULT 0   -- optimistic locking: UPDATE ... WHERE version = $n
);

-- Listing with filters and a (created_at, run_id) cursor.
CREATE INDEX runs_type_status_created ON workflow.runs (workflow_type, status, created_at, run_id);
CREATE INDEX runs_created ON workflow.runs (created_at, run_id);
CREATE INDEX runs_status_created ON workflow.runs (status, created_at);
CREATE INDEX runs_wake ON workflow.runs (wake_at) WHERE wake_at IS NOT NULL;

-- Step history: one row per attempt of a state's action.
CREATE TABLE workflow.steps (
    id            bigserial   PRIMARY KEY,
    run_id        uuid        NOT NULL REFERENCES workflow.runs (run_id) ON DELETE CASCADE,
    state         text        NOT NULL,
    action        text        NOT NULL,   -- registry name, e.g. 'campaign.extract_candidates'
    attempt       integer     NOT NULL CHECK (attempt >= 1),
    status        text        NOT NULL DEFAULT 'requested' CHECK (status IN (
                      'requested', 'succeeded', 'failed', 'timed_out')),
    input         jsonb,
    output        jsonb,
    error         text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    deadline_at   timestamptz,
    UNIQUE (run_id, state, attempt)
);

CREATE INDEX steps_open_deadline ON workflow.steps (deadline_at)
    WHERE status = 'requested' AND deadline_at IS NOT NULL;

-- A run waiting for a named event (a human decision); at most one open wait per run.
CREATE TABLE workflow.waits (
    id           bigserial   PRIMARY KEY,
    run_id       uuid        NOT NULL REFERENCES workflow.runs (run_id) ON DELETE CASCADE,
    state        text        NOT NULL,
    name         text        NOT NULL,            -- the signal name that ends the wait
    status       text        NOT NULL DEFAULT 'waiting' CHECK (status IN (
                     'waiting', 'signalled', 'expired', 'cancelled')),
    deadline_at  timestamptz,
    signal_id    bigint,                          -- the signal that ended it
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);

CREATE UNIQUE INDEX waits_one_open_per_run ON workflow.waits (run_id) WHERE status = 'waiting';
CREATE INDEX waits_open_deadline ON workflow.waits (deadline_at)
    WHERE status = 'waiting' AND deadline_at IS NOT NULL;

-- Signals are stored when they arrive, whether or not the run is waiting yet, so a signal that
-- beats the wait is consumed when the run reaches it.
CREATE TABLE workflow.signals (
    id           bigserial   PRIMARY KEY,
    run_id       uuid        NOT NULL REFERENCES workflow.runs (run_id) ON DELETE CASCADE,
    name         text        NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    event_id     uuid        UNIQUE,              -- the carrying event, so a redelivery is stored once
    received_at  timestamptz NOT NULL DEFAULT now(),
    consumed_at  timestamptz
);

CREATE INDEX signals_unconsumed ON workflow.signals (run_id, name, id) WHERE consumed_at IS NULL;

ALTER TABLE workflow.waits
    ADD CONSTRAINT waits_signal_fk FOREIGN KEY (signal_id) REFERENCES workflow.signals (id);

CREATE TABLE workflow.outbox (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    key           text,                                        -- Kafka message key (keeps order per key)
    payload       jsonb       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,    -- string map: trace context, content type
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX outbox_unpublished ON workflow.outbox (id) WHERE published_at IS NULL;

-- Inbox: a consumer inserts (consumer, event_id) in the same transaction as the event's effect;
-- a conflict means the event was already handled.
CREATE TABLE workflow.processed_events (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_at ON workflow.processed_events (processed_at);
