-- Privacy (docs/privacy.md): the language a candidate is written to, erasure, and the hashes of
-- erased addresses, kept so that those people are never contacted again.
--   * candidates.language: 'en', 'de' or 'es'; NULL means the country's (domain/privacy.py).
--   * candidates.erased_at: when the candidate's personal data was erased; the row stays (with a
--     pseudonym address) so the campaigns' emails, recipients and counts stay whole.
--   * erased_addresses: sha256 of each erased address, lower-cased and trimmed; an import skips
--     such an address and an extraction or a search never selects it.
ALTER TABLE campaign.candidates
    ADD COLUMN language text CHECK (language IN ('en', 'de', 'es')),
    ADD COLUMN erased_at timestamptz;

-- The same hash as services/campaign/domain/privacy.py `address_hash`: only ASCII letters are
-- lower-cased (the "C" collation does that whatever the database's locale) and only spaces,
-- tabs and line breaks trimmed, so both sides agree on every address.
CREATE FUNCTION campaign.address_hash(address text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN encode(sha256(convert_to(lower(btrim(address, E' \t\r\n') COLLATE "C"), 'UTF8')), 'hex');

CREATE TABLE campaign.erased_addresses (
    address_hash  text        PRIMARY KEY CHECK (address_hash ~ '^[0-9a-f]{64}$'),
    erased_at     timestamptz NOT NULL DEFAULT now()
);
