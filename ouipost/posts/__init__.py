"""Posts: drafts, validation against the networks, targets."""
