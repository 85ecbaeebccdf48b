"""The workflow service: durable workflow runs started from intents and requests."""
