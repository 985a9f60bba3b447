"""Social accounts: connecting, settings, tokens, and the OAuth apps of instance-based networks."""
