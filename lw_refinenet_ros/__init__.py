"""Light-Weight RefineNet semantic segmentation for ROS 2.

The generated message modules (``lw_refinenet_ros.msg``) are installed next to these
hand-written modules by CMake; ``extend_path`` lets a source checkout on ``sys.path``
merge with the installed copy instead of hiding it (docs/architecture.md §7).
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = '0.1.0'
