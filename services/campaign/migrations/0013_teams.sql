-- Every campaign belongs to a team: its run's, which is the team of the key (or the intent event)
-- that started it. A team sees and steers only its own campaigns; older ones are the default's.
ALTER TABLE campaign.campaigns ADD COLUMN team text NOT NULL DEFAULT 'default';
CREATE INDEX campaigns_team_created ON campaign.campaigns (team, created_at DESC, campaign_id DESC);
