-- Every run belongs to a team: the team of the key (or the intent event) that started it. A team
-- sees and steers only its own runs; runs from before teams are the default team's.
ALTER TABLE workflow.runs ADD COLUMN team text NOT NULL DEFAULT 'default';
CREATE INDEX runs_team_created ON workflow.runs (team, created_at DESC, run_id DESC);

-- An idempotency key names a run within its team: another team's same key starts its own run
-- (and learns nothing of the first).
ALTER TABLE workflow.runs DROP CONSTRAINT runs_idempotency_key_key;
CREATE UNIQUE INDEX runs_team_idempotency_key ON workflow.runs (team, idempotency_key);
