"""The small common library every service uses: settings, events, topics, broker, database, cache, telemetry."""
