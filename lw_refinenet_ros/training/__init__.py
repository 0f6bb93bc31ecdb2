"""Training: the reference recipe, the epoch loop, checkpoints and resume (scores: evaluation/)."""
