"""The messages services exchange, one module per service: `intent`, `inference`, `workflow`,
`campaign` (their commands, the replies' views and the events they publish), and `common` (the
event base, replies, `ping`, dead letters). Only these, and no service's logic, are shared."""
