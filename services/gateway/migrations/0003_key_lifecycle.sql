-- Key lifecycle: a key belongs to a team as well as a user; it may expire; its last use is kept
-- (written at most once a minute); rotation keeps the previous secret's hash until a grace ends.
ALTER TABLE gateway.api_keys
    ADD COLUMN team                  text        NOT NULL DEFAULT 'default'
                                                 CHECK (length(trim(team)) > 0),
    ADD COLUMN expires_at            timestamptz,          -- NULL: never expires
    ADD COLUMN last_used_at          timestamptz,
    ADD COLUMN rotated_at            timestamptz,
    ADD COLUMN previous_secret_hash  bytea,                -- the secret before the last rotation
    ADD COLUMN previous_valid_until  timestamptz;          -- ... which works until then

CREATE INDEX api_keys_team ON gateway.api_keys (team);
