-- Every version of an edited draft: revision 0 is the text as drafted (by the model or the
-- template), then one row per saved edit, with who made it and when. An email never edited has
-- none (its text is revision 0). Erasing a candidate erases their revisions' text too.
CREATE TABLE campaign.email_revisions (
    email_id    uuid        NOT NULL REFERENCES campaign.emails (email_id) ON DELETE CASCADE,
    revision    integer     NOT NULL CHECK (revision >= 0),
    subject     text        NOT NULL,
    body        text        NOT NULL,
    edited_by   text        NOT NULL,   -- a reviewer, or 'model' / 'template' for revision 0
    edited_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email_id, revision)
);
