# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Evaluation: scenes from real photos, rosbag replay, question files, reports."""
