"""All of the campaign service's SQL, by aggregate: `campaigns` (a campaign's row and status),
`candidates` (the talent pool and open jobs), `emails` (drafts, decisions and the send queue) and
`delivery` (delivery events and the suppression list). Functions take the caller's connection, so
a handler decides what commits together."""

SCHEMA = "campaign"
