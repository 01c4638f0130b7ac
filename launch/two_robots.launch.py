# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Launch two robots' visual memories: one livevlm node per robot namespace, each with its cameras.

    ros2 launch ros2_livevlm two_robots.launch.py
    ros2 launch ros2_livevlm two_robots.launch.py robot2_cameras:='[head/image_raw]' \
        model_path:=/models/llava-onevision-qwen2-0.5b-ov-hf \
        model_params_file:=<share>/ros2_livevlm/config/llava_onevision.yaml

An example to copy: each robot includes ``livevlm.launch.py`` in its own namespace, so
``robot1`` gets ``/robot1/livevlm`` (``/robot1/livevlm/query``, ``/robot1/livevlm/ask``)
subscribed to ``/robot1/front/image_raw`` (Image) and ``/robot1/rear/image_raw/compressed``
(CompressedImage), and ``robot2`` gets ``/robot2/livevlm`` on ``/robot2/camera/image_raw``.
Each node loads its own model and keeps one memory per camera. A robot's namespace, cameras
and compressed flags are arguments prefixed with its name (defaults in :data:`ROBOTS`); the
other arguments of ``livevlm.launch.py`` (``model_path``, ``params_file``,
``use_sim_time``, ...) apply to both nodes.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

ROBOTS = {
    'robot1': {'cameras': '[front/image_raw, rear/image_raw/compressed]',
               'compressed': '[false, true]'},
    'robot2': {'cameras': '[camera/image_raw]', 'compressed': 'false'},
}
"""Robot (and default namespace) -> its cameras and compressed flags, as launch arguments."""


def _robot_arguments(robot: str, cameras: str, compressed: str) -> list:
    """Declare ``<robot>_namespace``, ``<robot>_cameras`` and ``<robot>_compressed``."""
    return [
        DeclareLaunchArgument(f'{robot}_namespace', default_value=robot,
                              description=f'namespace of the livevlm node and cameras of {robot}'),
        DeclareLaunchArgument(f'{robot}_cameras', default_value=cameras,
                              description=f'image topics of {robot} (YAML list, relative to '
                              'its namespace)'),
        DeclareLaunchArgument(f'{robot}_compressed', default_value=compressed,
                              description=f'compressed flag of each camera of {robot} '
                              '(one for all or a YAML list)'),
    ]


def _robot(robot: str) -> GroupAction:
    """Include livevlm.launch.py for ``robot``, its arguments scoped to this group."""
    launch_file = os.path.join(
        get_package_share_directory('ros2_livevlm'), 'launch', 'livevlm.launch.py')
    arguments = {name: LaunchConfiguration(f'{robot}_{name}')
                 for name in ('namespace', 'cameras', 'compressed')}
    return GroupAction([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file), launch_arguments=arguments.items())])


def generate_launch_description():
    """Declare the per-robot arguments and one livevlm node per robot."""
    return LaunchDescription([
        *(argument for robot, flags in ROBOTS.items()
          for argument in _robot_arguments(robot, flags['cameras'], flags['compressed'])),
        *(_robot(robot) for robot in ROBOTS),
    ])
