"""Request plumbing under the HTTP packages: app keys, the envelope, idempotency, rate limits, usage, /metrics."""
