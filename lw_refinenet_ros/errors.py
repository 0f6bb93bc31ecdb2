"""Exception hierarchy shared by every layer of the package.

One small hierarchy lets the node and the CLI tell a configuration mistake (stop with the
reason) from a per-frame failure (count it, skip the frame, go on).
"""


class LWRefineNetError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(LWRefineNetError, ValueError):
    """A configuration value is invalid; the message names it, the expectation and the fix."""


class CheckpointError(LWRefineNetError):
    """A weights file or state dict cannot be used; the message lists the offending keys."""


class EngineError(LWRefineNetError):
    """Inference failed for one input (bad image, device failure, out of memory)."""


class ImageConversionError(LWRefineNetError, ValueError):
    """A ROS image message cannot be converted to an array (encoding, step, size, data)."""
