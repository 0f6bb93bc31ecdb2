"""Reliability suite: malformed input, faults, hostile checkpoints, shutdown under load."""
