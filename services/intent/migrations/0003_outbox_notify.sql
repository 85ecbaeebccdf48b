-- Wake the outbox relay when events are written: NOTIFY is delivered on commit, so the relay sees
-- the rows at once, and a writer saves a round trip (no separate NOTIFY statement).
CREATE FUNCTION intent.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intent_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON intent.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION intent.notify_outbox();
