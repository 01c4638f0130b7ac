# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The ROS 2 side of ros2_livevlm: the only package that imports rclpy.

``node`` (the lifecycle node and ``main``), ``serving`` (its ``~/query``, ``~/ask`` and
``~/reset``), ``errors`` (exceptions contained, counted and logged once), ``params``
(parameter declarations and the settings read from them), ``subscription`` and ``qos``
(camera subscriptions whose QoS follows their publishers; request QoS; the Fast DDS
profile for large frames), ``feed`` (a camera's sampler and bounded queue; no rclpy),
``worker`` (the supervised thread that owns the engines), ``status`` (the messages it
publishes), ``image`` (camera messages to RGB frames; no rclpy), ``client`` (a blocking
Python client), ``process`` (the node in its own process; no rclpy), ``camera`` (a
synthetic camera publisher), ``demo`` (a one-minute demo of the node) and ``soak`` (a
long run of the node at camera rate).
"""
