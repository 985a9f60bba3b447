"""Analytics: what the networks say about published posts and accounts."""
