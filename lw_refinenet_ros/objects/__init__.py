"""Parts, not pixels: objects, pick points, tracks and belt positions from a label image.

Engine layer: numpy and OpenCV only, no ROS and no torch. The node turns the results into
``segmentation/objects`` and ``segmentation/markers`` (see ``lw_refinenet_ros/ros/``).
"""
