"""Evaluation: scenes from real photos, rosbag replay, question files, reports."""
