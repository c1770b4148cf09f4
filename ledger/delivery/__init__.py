"""Event delivery beyond the stream: signed webhooks and the NATS JetStream relay (README "Webhooks and NATS")."""
