"""The gateway: the HTTP API, auth, and request/reply to the services over Kafka."""
