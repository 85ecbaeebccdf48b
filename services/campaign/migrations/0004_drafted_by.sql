-- Which writer made each draft: the language model, or the job's template (the fallback when the
-- model's answer was unusable, and the only writer when no model is configured). NULL for drafts
-- written before this column existed.
ALTER TABLE campaign.emails
    ADD COLUMN IF NOT EXISTS drafted_by text CHECK (drafted_by IN ('model', 'template'));
