-- The audit log: every decision and change a person made (a draft approved or edited, a campaign
-- cancelled, a run retried, a key revoked), who made it, when, and the request's trace. Entries
-- come from the services on `audit.recorded` and from the gateway's own key changes; an entry
-- delivered twice is stored once (its audit_id). Listed newest first: (at DESC, audit_id DESC).
CREATE TABLE gateway.audit_log (
    audit_id     uuid        PRIMARY KEY,
    at           timestamptz NOT NULL,              -- when the change was made (the writer's clock)
    actor        text,                              -- the user who asked; NULL when not known
    action       text        NOT NULL,              -- email.approved, campaign.cancelled, key.revoked, ...
    object_type  text        NOT NULL,              -- campaign, email, run, key, candidate, sending
    object_id    text        NOT NULL,
    campaign_id  uuid,
    run_id       uuid,
    team         text,                              -- the team that owns the object, when known
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    trace_id     text,                              -- 32 hex digits
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_newest ON gateway.audit_log (at DESC, audit_id DESC);
CREATE INDEX audit_log_action ON gateway.audit_log (action, at DESC, audit_id DESC);
CREATE INDEX audit_log_actor ON gateway.audit_log (actor, at DESC, audit_id DESC);
CREATE INDEX audit_log_team ON gateway.audit_log (team, at DESC, audit_id DESC);
CREATE INDEX audit_log_object ON gateway.audit_log (object_id, at DESC, audit_id DESC);
CREATE INDEX audit_log_campaign ON gateway.audit_log (campaign_id, at DESC, audit_id DESC)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX audit_log_run ON gateway.audit_log (run_id, at DESC, audit_id DESC)
    WHERE run_id IS NOT NULL;
