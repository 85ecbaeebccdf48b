-- The engine's bookkeeping: where a run is in its state (visit and attempt), which state failed
-- (so a retry resumes there), and which step attempt is in flight.
ALTER TABLE workflow.runs
    ADD COLUMN visit           integer NOT NULL DEFAULT 0 CHECK (visit >= 0),
    ADD COLUMN attempt         integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    ADD COLUMN failed_state    text,
    ADD COLUMN current_step_id bigint;

-- A state can be entered more than once (a reminder loop): attempts are numbered per visit.
ALTER TABLE workflow.steps
    ADD COLUMN visit integer NOT NULL DEFAULT 1 CHECK (visit >= 1),
    DROP CONSTRAINT steps_run_id_state_attempt_key,
    ADD CONSTRAINT steps_run_state_visit_attempt UNIQUE (run_id, state, visit, attempt),
    DROP CONSTRAINT steps_status_check,
    ADD CONSTRAINT steps_status_check CHECK (status IN (
        'requested', 'succeeded', 'failed', 'timed_out', 'abandoned'));

CREATE INDEX steps_run ON workflow.steps (run_id, id);
