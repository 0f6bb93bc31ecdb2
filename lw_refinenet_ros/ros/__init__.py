"""The ROS 2 layer: the only package that imports rclpy and message types."""
