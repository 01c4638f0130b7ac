# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Benchmarks: ratio tables measured in one run, never timed assertions (BENCHMARKS.md)."""
