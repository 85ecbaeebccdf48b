-- The campaign service's data: candidates and jobs, campaigns with their emails and delivery events,
-- the suppression list, plus the outbox it publishes through and the inbox for idempotent consumers.
CREATE SCHEMA IF NOT EXISTS campaign;

CREATE TABLE campaign.candidates (
    candidate_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    external_ref      text        UNIQUE,          -- id in the system we imported from (ATS, CSV)
    full_name         text        NOT NULL CHECK (btrim(full_name) <> ''),
    first_name        text,                        -- how to greet them; NULL means use full_name
    email             text        NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    city              text,
    country           text        CHECK (country ~ '^[A-Z]{2}$'),   -- ISO 3166-1 alpha-2
    timezone          text,                        -- IANA name, e.g. 'Europe/Berlin'
    seniority         text        CHECK (seniority IN (
                          'junior', 'mid', 'senior', 'staff', 'principal', 'lead')),
    years_experience  integer     CHECK (years_experience BETWEEN 0 AND 70),
    skills            text[]      NOT NULL DEFAULT '{}',   -- canonical lower-case names ('python')
    headline          text,
    summary           text,                        -- written by the candidate: untrusted text
    source            text        NOT NULL,        -- how the row got here: 'demo-seed', 'csv-import', ...
    found_via         text,                        -- where we found their details, said in the email
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX candidates_email_lower ON campaign.candidates (lower(email));
CREATE INDEX candidates_skills ON campaign.candidates USING gin (skills);
CREATE INDEX candidates_city_seniority ON campaign.candidates (lower(city), seniority);
CREATE INDEX candidates_source ON campaign.candidates (source);

CREATE TABLE campaign.jobs (
    job_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    external_ref  text        UNIQUE,
    title         text        NOT NULL CHECK (btrim(title) <> ''),
    team          text,
    city          text,
    country       text        CHECK (country ~ '^[A-Z]{2}$'),
    remote        boolean     NOT NULL DEFAULT false,
    seniority     text        CHECK (seniority IN (
                      'junior', 'mid', 'senior', 'staff', 'principal', 'lead')),
    skills        text[]      NOT NULL DEFAULT '{}',
    description   text        NOT NULL DEFAULT '',
    status        text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    source        text        NOT NULL DEFAULT 'manual',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_title_lower ON campaign.jobs (lower(title));
CREATE INDEX jobs_status ON campaign.jobs (status);

-- A campaign is the campaign service's view of one email-campaign workflow run (same id).
CREATE TABLE campaign.campaigns (
    campaign_id      uuid        PRIMARY KEY,      -- = workflow.runs.run_id
    job_id           uuid        NOT NULL REFERENCES campaign.jobs (job_id),
    name             text        NOT NULL,
    status           text        NOT NULL DEFAULT 'extracting' CHECK (status IN (
                         'extracting', 'generating', 'awaiting_review', 'sending', 'monitoring',
                         'completed', 'failed', 'cancelled', 'expired')),
    slots            jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- the search criteria it started with
    generation_mode  text        CHECK (generation_mode IN ('model', 'template')),
    review_deadline  timestamptz,
    created_by       text,
    correlation_id   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (campaign_id, job_id)                   -- target of the emails' (campaign, job) key
);

CREATE INDEX campaigns_job ON campaign.campaigns (job_id);
CREATE INDEX campaigns_created ON campaign.campaigns (created_at, campaign_id);

CREATE TABLE campaign.emails (
    email_id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id      uuid        NOT NULL,
    job_id           uuid        NOT NULL,         -- copied from the campaign for contact history
    candidate_id     uuid        NOT NULL REFERENCES campaign.candidates (candidate_id),
    to_address       text        NOT NULL CHECK (to_address ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    subject          text        NOT NULL CHECK (btrim(subject) <> ''),
    body             text        NOT NULL CHECK (btrim(body) <> ''),
    status           text        NOT NULL DEFAULT 'drafted' CHECK (status IN (
                         'drafted', 'approved', 'rejected', 'expired', 'sending', 'sent', 'failed',
                         'bounced')),
    edited           boolean     NOT NULL DEFAULT false,   -- the reviewer changed the draft
    message_id       text        UNIQUE,           -- RFC 5322 Message-ID, fixed before the first try
    reviewed_by      text,
    reviewed_at      timestamptz,
    sent_at          timestamptz,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,                  -- backoff after a temporary SMTP failure
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, candidate_id),
    UNIQUE (email_id, campaign_id),                -- target of the delivery events' key
    FOREIGN KEY (campaign_id, job_id)
        REFERENCES campaign.campaigns (campaign_id, job_id) ON DELETE CASCADE
);

CREATE INDEX emails_campaign_status ON campaign.emails (campaign_id, status);
CREATE INDEX emails_candidate ON campaign.emails (candidate_id);
-- "Already emailed about this job within the window" is one probe per candidate:
--   EXISTS (SELECT 1 FROM campaign.emails e WHERE e.job_id = $1 AND e.candidate_id = c.candidate_id
--           AND e.status IN (...) AND coalesce(e.sent_at, e.created_at) > now() - $2)
CREATE INDEX emails_contact_history ON campaign.emails (job_id, candidate_id)
    INCLUDE (status, sent_at, created_at);
CREATE INDEX emails_send_queue ON campaign.emails (next_attempt_at)
    WHERE status IN ('approved', 'sending');

CREATE TABLE campaign.delivery_events (
    id           bigserial   PRIMARY KEY,
    event_id     uuid        UNIQUE,               -- dedupes redelivered provider and webhook events
    email_id     uuid        NOT NULL,
    campaign_id  uuid        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN (
                     'sent', 'delivered', 'bounced', 'opened', 'clicked', 'replied',
                     'unsubscribed', 'complained')),
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- e.g. {"permanent": true, "url": ...}
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    received_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (email_id, campaign_id)
        REFERENCES campaign.emails (email_id, campaign_id) ON DELETE CASCADE
);

CREATE INDEX delivery_events_email ON campaign.delivery_events (email_id);
CREATE INDEX delivery_events_campaign_kind ON campaign.delivery_events (campaign_id, kind);

-- Addresses never to mail again, whatever the campaign; checked right before every send.
CREATE TABLE campaign.suppressions (
    email        text        PRIMARY KEY CHECK (email = lower(email)),
    reason       text        NOT NULL CHECK (reason IN (
                     'unsubscribed', 'hard_bounce', 'complaint', 'soft_bounce_limit', 'manual')),
    campaign_id  uuid        REFERENCES campaign.campaigns (campaign_id) ON DELETE SET NULL,
    detail       text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaign.outbox (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    key           text,                                        -- Kafka message key (keeps order per key)
    payload       jsonb       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,    -- string map: trace context, content type
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX outbox_unpublished ON campaign.outbox (id) WHERE published_at IS NULL;

-- Inbox: a consumer inserts (consumer, event_id) in the same transaction as the event's effect;
-- a conflict means the event was already handled (an approved email is sent once).
CREATE TABLE campaign.processed_events (
    consumer      text        NOT NULL,
    event_id      uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_at ON campaign.processed_events (processed_at);
