"""Training and evaluation: the reference recipe, metrics (mIoU), checkpoints and resume."""
