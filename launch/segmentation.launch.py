"""Launch the Light-Weight RefineNet segmentation node with its parameters file.

Usage (``ros2 launch`` looks in ``share/lw_refinenet_ros/launch``)::

    ros2 launch lw_refinenet_ros segmentation.launch.py image_topic:=/camera/image_raw
    ros2 launch lw_refinenet_ros segmentation.launch.py use_shm:=true device:=cuda
    ros2 launch lw_refinenet_ros segmentation.launch.py lifecycle:=true

``segmentation.launch.xml`` and ``segmentation.launch.yaml`` describe the same node with the same
arguments; ``test/launch`` keeps the three in step, so change them together.
"""

# The repository's own launch/ folder makes isort take `launch` for a first-party module;
# it is the third-party ROS package (pyproject: known-third-party would fix this for all).
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'lw_refinenet_ros'
NODE_NAME = 'lw_refinenet'

# (name, default, description). Defaults that are substitutions are filled in below.
ARGUMENTS = (
    ('params_file', None,
     'YAML parameters file for the node (top-level key lw_refinenet or /**); '
     'defaults to the shipped config/lw_refinenet.yaml'),
    ('namespace', '', 'Namespace for the node and its relative topics (segmentation/...)'),
    ('image_topic', '/camera/image_raw',
     'Camera image topic the node subscribes to (remaps "image"; with use_compressed the node '
     'reads <image_topic>/compressed)'),
    ('camera_info_topic', '/camera/camera_info', 'CameraInfo topic (remaps "camera_info")'),
    ('use_compressed', 'false',
     'true: subscribe to sensor_msgs/CompressedImage on <image_topic>/compressed '
     '(sets parameter input_type to compressed instead of raw)'),
    ('device', 'auto',
     'Inference device: auto, cpu, cuda or cuda:N (overrides the params file)'),
    ('weights', '',
     'Checkpoint path for parameter model.weights; empty uses the packaged default model '
     '(overrides the params file)'),
    ('use_shm', 'false',
     'true: set FASTRTPS_DEFAULT_PROFILES_FILE to the shipped 64 MB shared-memory Fast DDS '
     'profile for processes started by this launch (p50 latency 14 ms -> 3.4 ms at 640x480; '
     'the camera process needs it too)'),
    ('lifecycle', 'false',
     'true: start lifecycle_segmentation_node (a managed node; configure and activate it with '
     '"ros2 lifecycle set /lw_refinenet configure" then "activate")'),
)


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, the optional SHM environment and the (lifecycle) node."""
    share = FindPackageShare(PACKAGE)
    defaults = {'params_file': PathJoinSubstitution([share, 'config', 'lw_refinenet.yaml'])}
    declared = [
        DeclareLaunchArgument(name, default_value=defaults.get(name, default),
                              description=description)
        for name, default, description in ARGUMENTS
    ]

    image_topic = LaunchConfiguration('image_topic')
    lifecycle = LaunchConfiguration('lifecycle')
    # Applied after the params file so that the launch arguments win (later files override).
    # launch_ros YAML-parses substituted values and rejects an empty one (None); the quotes keep
    # device and weights strings, so weights:='' (the packaged model) passes through.
    overrides = {
        'device': ["'", LaunchConfiguration('device'), "'"],
        'model.weights': ["'", LaunchConfiguration('weights'), "'"],
        'input_type': PythonExpression([
            "'compressed' if '", LaunchConfiguration('use_compressed'),
            "'.lower() == 'true' else 'raw'"]),
    }
    common = {
        'package': PACKAGE,
        'name': NODE_NAME,
        'namespace': LaunchConfiguration('namespace'),
        'parameters': [LaunchConfiguration('params_file'), overrides],
        # Remap rules match whole names, so the compressed topic needs its own rule.
        'remappings': [
            ('image', image_topic),
            ('image/compressed', [image_topic, '/compressed']),
            ('camera_info', LaunchConfiguration('camera_info_topic')),
        ],
        'output': 'screen',
    }
    return LaunchDescription([
        *declared,
        # Fast DDS reads this variable at participant creation, so it must be set before any
        # process starts; it only reaches processes started by this launch.
        SetEnvironmentVariable(
            'FASTRTPS_DEFAULT_PROFILES_FILE',
            PathJoinSubstitution([share, 'config', 'fastdds_shm.xml']),
            condition=IfCondition(LaunchConfiguration('use_shm'))),
        Node(executable='segmentation_node', condition=UnlessCondition(lifecycle), **common),
        LifecycleNode(executable='lifecycle_segmentation_node', condition=IfCondition(lifecycle),
                      **common),
    ])
