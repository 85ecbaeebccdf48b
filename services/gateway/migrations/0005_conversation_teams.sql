-- A conversation is its user's within a team: two teams' users of the same name have their own
-- conversations, and another team's conversation is not found. Older ones are the default team's.
ALTER TABLE gateway.conversations ADD COLUMN team text NOT NULL DEFAULT 'default';
DROP INDEX gateway.conversations_owner;
CREATE INDEX conversations_owner
    ON gateway.conversations (team, owner, updated_at DESC, conversation_id);
