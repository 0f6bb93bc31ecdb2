"""Live view in Foxglove: a bridge process from the node's ROS outputs to a Foxglove
WebSocket server (``lw-refinenet view``); see docs/view.md.

``server`` holds the Foxglove side (channels, port), ``bridge`` the ROS side (lazy
best-effort subscriptions, image compression), ``encode`` and ``payloads`` the conversions,
``layout`` the shipped Foxglove layout.
"""
