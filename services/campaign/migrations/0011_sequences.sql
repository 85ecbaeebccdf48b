-- Follow-up sequences: a campaign writes to each recipient a first email (step 0) and up to a few
-- follow-ups (step 1, 2, ...), drafted and reviewed together and sent in the same thread.
--   * A follow-up is a row of campaign.emails like the first email, with its step, the number of
--     working days to wait after the previous step, and (once the first email is sent) the
--     Message-ID it replies to.
--   * 'waiting': approved, but its previous step has not been sent yet (no send time).
--   * 'stopped': will never be sent, because the recipient replied, unsubscribed, bounced or
--     complained, a person stopped the sequence, or a previous step failed; `last_error` says which.
ALTER TABLE campaign.campaigns
    ADD COLUMN follow_up_days integer[] NOT NULL DEFAULT '{}'
        CHECK (array_position(follow_up_days, NULL) IS NULL AND 0 < ALL (follow_up_days));

ALTER TABLE campaign.emails
    ADD COLUMN step smallint NOT NULL DEFAULT 0 CHECK (step BETWEEN 0 AND 10),
    ADD COLUMN wait_days smallint CHECK (wait_days > 0),       -- working days after the previous step
    ADD COLUMN in_reply_to text;                              -- the thread's first Message-ID

ALTER TABLE campaign.emails DROP CONSTRAINT emails_status_check;
ALTER TABLE campaign.emails ADD CONSTRAINT emails_status_check CHECK (status IN (
    'drafted', 'approved', 'rejected', 'expired', 'sending', 'sent', 'failed', 'bounced',
    'cancelled', 'waiting', 'stopped'));

ALTER TABLE campaign.emails DROP CONSTRAINT emails_campaign_id_candidate_id_key;
ALTER TABLE campaign.emails ADD CONSTRAINT emails_campaign_candidate_step
    UNIQUE (campaign_id, candidate_id, step);
