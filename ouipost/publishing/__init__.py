"""Publishing: the target state machine, pacing, and the health of the networks' calls."""
