"""Camera driver + segmentation node (+ RViz2): a complete live demo from one command.

Usage::

    ros2 launch lw_refinenet_ros camera_segmentation.launch.py
    ros2 launch lw_refinenet_ros camera_segmentation.launch.py camera:=usb_cam rviz:=true
    ros2 launch lw_refinenet_ros camera_segmentation.launch.py video_device:=/dev/video2 \\
        device:=cuda width:=1920 height:=1080

The driver runs in namespace ``camera`` and publishes ``/camera/image_raw`` and
``/camera/camera_info``; segmentation.launch.py is included with its image topics remapped there.
The drivers are separate packages (``apt install ros-jazzy-v4l2-camera`` or
``ros-jazzy-usb-cam``); only the chosen one has to be installed.

The driver, the node and rviz2 use the 64 MB shared-memory Fast DDS profile by default
(``use_shm:=true``): on the default transports a best-effort 1080p stream between two
processes loses most of its frames (docs/launch.md). ``use_shm:=false`` only for a driver
that must talk to other machines with a profile of its own.
"""

# The repository's own launch/ folder makes isort take `launch` for a first-party module;
# it is the third-party ROS package (pyproject: known-third-party would fix this for all).
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'lw_refinenet_ros'
CAMERA_NAMESPACE = 'camera'
CAMERAS = ('v4l2_camera', 'usb_cam')

# (name, default, description); None defaults are substitutions filled in below.
ARGUMENTS = (
    ('camera', 'v4l2_camera',
     'Camera driver: v4l2_camera (package v4l2_camera) or usb_cam (package usb_cam)'),
    ('video_device', '/dev/video0', 'V4L2 device the driver opens'),
    ('width', '640', 'Capture width in pixels'),
    ('height', '480', 'Capture height in pixels'),
    ('rviz', 'false', 'true: also start rviz2 with config/segmentation.rviz'),
    ('rviz_config', None, 'RViz2 configuration file (default: the shipped segmentation.rviz)'),
    ('params_file', None,
     'YAML parameters file for the segmentation node (default: config/lw_refinenet.yaml)'),
    ('device', 'auto', 'Inference device: auto, cpu, cuda or cuda:N'),
    ('weights', '', 'Checkpoint for model.weights; empty uses the packaged default model'),
    ('use_compressed', 'false',
     'true: segment /camera/image_raw/compressed (needs the compressed image_transport plugin '
     'in the driver)'),
    ('use_shm', 'true',
     'true (default): use the 64 MB shared-memory Fast DDS profile for the driver, the node '
     'and rviz2 (p50 latency 14 ms -> 3.4 ms at 640x480; on the default transports a '
     'best-effort 1080p stream loses most frames); false: the default transports'),
)


def _is_camera(name: str) -> IfCondition:
    """Condition that holds when the ``camera`` argument selects driver ``name``."""
    return IfCondition(PythonExpression(["'", LaunchConfiguration('camera'), "' == '", name, "'"]))


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, then the SHM environment, the driver, the node and rviz2."""
    share = FindPackageShare(PACKAGE)
    defaults = {
        'rviz_config': PathJoinSubstitution([share, 'config', 'segmentation.rviz']),
        'params_file': PathJoinSubstitution([share, 'config', 'lw_refinenet.yaml']),
    }
    declared = []
    for name, default, description in ARGUMENTS:
        extra = {'choices': list(CAMERAS)} if name == 'camera' else {}
        declared.append(DeclareLaunchArgument(
            name, default_value=defaults.get(name, default), description=description, **extra))

    video_device = LaunchConfiguration('video_device')
    width = LaunchConfiguration('width')
    height = LaunchConfiguration('height')
    camera_topic = f'/{CAMERA_NAMESPACE}/image_raw'
    segmentation = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([share, 'launch', 'segmentation.launch.py'])),
        launch_arguments={
            'image_topic': camera_topic,
            'camera_info_topic': f'/{CAMERA_NAMESPACE}/camera_info',
            'params_file': LaunchConfiguration('params_file'),
            'device': LaunchConfiguration('device'),
            'weights': LaunchConfiguration('weights'),
            'use_compressed': LaunchConfiguration('use_compressed'),
            'use_shm': LaunchConfiguration('use_shm'),
        }.items())

    return LaunchDescription([
        *declared,
        # First, so that the driver and rviz2 get it too: both ends must use shared memory.
        SetEnvironmentVariable(
            'FASTRTPS_DEFAULT_PROFILES_FILE',
            PathJoinSubstitution([share, 'config', 'fastdds_shm.xml']),
            condition=IfCondition(LaunchConfiguration('use_shm'))),
        Node(
            package='v4l2_camera', executable='v4l2_camera_node', name='v4l2_camera',
            namespace=CAMERA_NAMESPACE, output='screen', condition=_is_camera('v4l2_camera'),
            parameters=[{
                'video_device': video_device,
                # One string '[w, h]' that launch_ros YAML-parses into an integer array; a
                # plain [width, height] would be joined into the single string 'wh'.
                'image_size': ['[', width, ', ', height, ']'],
                'camera_frame_id': 'camera',
            }]),
        Node(
            package='usb_cam', executable='usb_cam_node_exe', name='usb_cam',
            namespace=CAMERA_NAMESPACE, output='screen', condition=_is_camera('usb_cam'),
            parameters=[{
                'video_device': video_device,
                'image_width': width,
                'image_height': height,
                'framerate': 30.0,
                'frame_id': 'camera',
            }]),
        segmentation,
        Node(
            package='rviz2', executable='rviz2', name='rviz2', output='screen',
            arguments=['-d', LaunchConfiguration('rviz_config')],
            condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
