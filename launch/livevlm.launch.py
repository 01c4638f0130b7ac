# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Launch the livevlm lifecycle node with a parameter file and the common overrides.

    ros2 launch ros2_livevlm livevlm.launch.py image_topic:=/camera/image_raw
    ros2 launch ros2_livevlm livevlm.launch.py image_topic:=/camera/image_raw \
        model_params_file:=<share>/ros2_livevlm/config/llava_onevision.yaml \
        model_path:=/models/llava-onevision-qwen2-0.5b-ov-hf

The default parameters (``config/livevlm.yaml``) run the reference model; a real
LLaVA-OneVision checkpoint takes ``config/llava_onevision.yaml`` on top (model, device and
the LiveVLM memory sizes for 196 tokens per frame) and its directory as ``model_path``.

Autostart (configure + activate) is the node's ``autostart`` parameter, set from the
argument of the same name; with ``autostart:=false`` drive the node through its lifecycle
services (``ros2 lifecycle set /livevlm configure``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue

ARGUMENTS = {
    'params_file': (
        os.path.join(get_package_share_directory('ros2_livevlm'), 'config', 'livevlm.yaml'),
        'YAML file of node parameters (/**: ros__parameters:)'),
    'model_params_file': (
        '', 'optional YAML file applied after params_file, e.g. config/llava_onevision.yaml '
        'for a real checkpoint (model, device, memory sizes)'),
    'namespace': ('', 'namespace of the node, its services and relative camera topics'),
    'use_sim_time': ('false', 'use /clock (e.g. ros2 bag play --clock) as the node clock'),
    'autostart': ('true', 'configure and activate the node at start'),
    'log_level': ('info', 'log level: debug, info, warn, error or fatal'),
    'model_path': ('', 'overrides model_path of the parameter files when set: "reference", '
                   '"tiny" or a local LLaVA-OneVision directory'),
    'image_topic': ('', 'overrides cameras of params_file with this one image topic when set'),
}


def _livevlm_node(context, *args, **kwargs):
    """Build the node, adding the overrides that were given (empty arguments are unset)."""
    overrides = {
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
        'autostart': ParameterValue(LaunchConfiguration('autostart'), value_type=bool),
    }
    model_path = LaunchConfiguration('model_path').perform(context)
    if model_path:
        overrides['model_path'] = model_path
    image_topic = LaunchConfiguration('image_topic').perform(context)
    if image_topic:
        overrides['cameras'] = [image_topic]
    files = [LaunchConfiguration('params_file')]
    if LaunchConfiguration('model_params_file').perform(context):
        files.append(LaunchConfiguration('model_params_file'))
    return [LifecycleNode(
        package='ros2_livevlm', executable='livevlm_node', name='livevlm',
        namespace=LaunchConfiguration('namespace'), output='screen',
        parameters=[*files, overrides],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')])]


def generate_launch_description():
    """Declare the arguments and the node."""
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in ARGUMENTS.items()),
        OpaqueFunction(function=_livevlm_node),
    ])
