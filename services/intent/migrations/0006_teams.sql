-- A conversation id names a conversation within a team: two teams that both say "c1" have two
-- conversations (follow-ups and a run's question stay in their own team's). Older rows are the
-- default team's.
ALTER TABLE intent.intent_log ADD COLUMN team text NOT NULL DEFAULT 'default';
ALTER TABLE intent.run_questions ADD COLUMN team text NOT NULL DEFAULT 'default';
DROP INDEX intent.intent_log_conversation;
CREATE INDEX intent_log_conversation ON intent.intent_log (conversation_id, team, created_at);
