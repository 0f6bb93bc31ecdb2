"""A stand-in segmentation node that works, then exits with code 3 when stopped: the demo must
report it (and exit non-zero) instead of calling the run clean."""

from __future__ import annotations

from fake_segmentation_node import main as serve


def main() -> int:
    serve()
    return 3
