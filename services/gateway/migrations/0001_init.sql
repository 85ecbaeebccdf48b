-- The gateway owns API keys: hashed secrets that belong to a named user and carry scopes.
CREATE SCHEMA IF NOT EXISTS gateway;

CREATE TABLE gateway.api_keys (
    key_id       text        PRIMARY KEY,           -- public part of the key, shown in listings
    user_name    text        NOT NULL CHECK (length(trim(user_name)) > 0),
    scopes       text[]      NOT NULL CHECK (scopes <@ ARRAY['assistant', 'workflows', 'review', 'admin']),
    secret_hash  bytea       NOT NULL,              -- sha256 of the secret part; the secret is never stored
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE INDEX api_keys_user ON gateway.api_keys (user_name);
