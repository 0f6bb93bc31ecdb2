"""``python -m lw_refinenet_ros`` is the same as the ``lw-refinenet`` command."""

import sys

from lw_refinenet_ros.cli import main

sys.exit(main())
