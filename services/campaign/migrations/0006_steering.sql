-- A campaign a person steers: pausing stops its sending until it is resumed (a flag beside the
-- status, since a campaign can be paused in review or while sending); cancelling and closing end
-- it, and who did it is kept. Emails that will never be sent because their campaign was cancelled
-- are 'cancelled'.
ALTER TABLE campaign.campaigns
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_by text,
    ADD COLUMN paused_by_stop boolean NOT NULL DEFAULT false,  -- by the emergency stop
    ADD COLUMN ended_by  text;

ALTER TABLE campaign.emails DROP CONSTRAINT emails_status_check;
ALTER TABLE campaign.emails ADD CONSTRAINT emails_status_check CHECK (status IN (
    'drafted', 'approved', 'rejected', 'expired', 'sending', 'sent', 'failed', 'bounced',
    'cancelled'));

-- GET /api/campaigns: newest first, filtered by who created it or its status.
CREATE INDEX campaigns_created_by ON campaign.campaigns (created_by, created_at, campaign_id);
CREATE INDEX campaigns_status ON campaign.campaigns (status, created_at, campaign_id);
