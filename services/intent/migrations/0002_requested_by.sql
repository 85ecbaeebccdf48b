-- Who asked (the API key's user), so a conversation's history and audits name a person.
ALTER TABLE intent.intent_log ADD COLUMN requested_by text;
