# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The ROS 2 side of ros2_livevlm: the only package that imports rclpy.

``node`` (the lifecycle node and ``main``), ``params`` (parameter declarations and the
settings read from them), ``worker`` (camera feeds and the thread that owns the engines),
``status`` (the messages it publishes), ``image`` (camera messages to RGB frames; no
rclpy), ``client`` (a blocking Python client), ``process`` (the node in its own process;
no rclpy) and ``demo`` (a one-minute demo of the node).
"""
