-- The campaign service performs workflow steps (shared.action_worker): each step visit's result is
-- stored with its effect, so a redelivered request is answered without doing the effect twice.
CREATE TABLE IF NOT EXISTS campaign.action_results (
    idempotency_key  text        PRIMARY KEY,     -- run_id:state:visit
    run_id           uuid        NOT NULL,
    action           text        NOT NULL,
    output           jsonb       NOT NULL,
    completed_at     timestamptz NOT NULL DEFAULT now()
);

-- Who a campaign writes to, as extracted: drafts are written from this list, so generating them
-- again (a retry, or a later model pass) addresses the same people in the same order.
CREATE TABLE campaign.recipients (
    campaign_id     uuid        NOT NULL REFERENCES campaign.campaigns (campaign_id) ON DELETE CASCADE,
    candidate_id    uuid        NOT NULL REFERENCES campaign.candidates (candidate_id),
    rank            integer     NOT NULL CHECK (rank >= 1),   -- 1 is the best match
    matched_skills  text[]      NOT NULL DEFAULT '{}',        -- the requested skills they have
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, candidate_id)
);

CREATE INDEX recipients_candidate ON campaign.recipients (candidate_id);
