-- Where the mailbox reader (services/campaign/inbox.py) is in each IMAP folder: the highest UID it
-- has processed while the folder had this UIDVALIDITY (a new UIDVALIDITY renumbers the folder, so
-- it reads the folder again from the start). Only a shortcut: what the reader records is kept once
-- by the delivery events' event_id (from the mail's Message-ID), so a lost row re-reads mail and
-- records nothing twice.
CREATE TABLE campaign.inbox_cursors (
    mailbox      text        NOT NULL,               -- username@host:port
    folder       text        NOT NULL,
    uidvalidity  bigint      NOT NULL,
    last_uid     bigint      NOT NULL CHECK (last_uid >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox, folder)
);

-- A reply that names none of our Message-IDs is matched to the latest email sent to its sender.
CREATE INDEX emails_recipient_sent ON campaign.emails (lower(to_address), sent_at DESC)
    WHERE sent_at IS NOT NULL;
