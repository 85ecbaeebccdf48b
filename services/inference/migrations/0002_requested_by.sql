-- Who asked and in which conversation, for per-user token accounting.
ALTER TABLE inference.model_calls ADD COLUMN requested_by text;
ALTER TABLE inference.model_calls ADD COLUMN conversation_id text;
CREATE INDEX model_calls_requested_by ON inference.model_calls (requested_by, created_at);
