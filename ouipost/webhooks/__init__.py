"""Webhooks: domain events in the outbox, endpoints, signed deliveries."""
