-- Rows a writer publishes itself straight after commit (shared/outbox.py) carry relay_after: the
-- relay leaves them alone until then, and their insert wakes nobody. Other rows wake the relay.
ALTER TABLE intent.outbox ADD COLUMN relay_after timestamptz;

CREATE OR REPLACE FUNCTION intent.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE relay_after IS NULL) THEN
        PERFORM pg_notify('intent_outbox', '');
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER outbox_notify ON intent.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON intent.outbox REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION intent.notify_outbox();
