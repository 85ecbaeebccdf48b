"""The small common library of every service: settings, events, topics, broker, database, cache,
telemetry."""
