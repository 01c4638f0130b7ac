# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Launch one livevlm lifecycle node with a parameter file, its cameras and the common overrides.

    ros2 launch ros2_livevlm livevlm.launch.py image_topic:=/camera/image_raw
    ros2 launch ros2_livevlm livevlm.launch.py namespace:=robot1 \
        cameras:='[front/image_raw, rear/image_raw/compressed]' compressed:='[false, true]'
    ros2 launch ros2_livevlm livevlm.launch.py image_topic:=/camera/image_raw \
        model_params_file:=<share>/ros2_livevlm/config/llava_onevision.yaml \
        model_path:=/models/llava-onevision-qwen2-0.5b-ov-hf

The default parameters (``config/livevlm.yaml``) run the reference model; a real
LLaVA-OneVision checkpoint takes ``config/llava_onevision.yaml`` on top (model, device and
the LiveVLM memory sizes for 196 tokens per frame) and its directory as ``model_path``.
``cameras`` and ``compressed`` take one value or a YAML list, as ``ros2 param set`` does;
relative camera topics resolve in the node's namespace. ``two_robots.launch.py`` includes
this file once per robot.

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
import yaml

ARGUMENTS = {
    'params_file': (
        os.path.join(get_package_share_directory('ros2_livevlm'), 'config', 'livevlm.yaml'),
        'YAML file of node parameters (/**: ros__parameters:)'),
    'model_params_file': (
        '', 'optional YAML file applied after params_file, e.g. config/llava_onevision.yaml '
        'for a real checkpoint (model, device, memory sizes)'),
    'node_name': ('livevlm', 'name of the node (its services are ~/query, ~/ask, ...)'),
    'namespace': ('', 'namespace of the node, its services and relative camera topics'),
    'use_sim_time': ('false', 'use /clock (e.g. ros2 bag play --clock) as the node clock'),
    'autostart': ('true', 'configure and activate the node at start'),
    'log_level': ('info', 'log level: debug, info, warn, error or fatal'),
    'model_path': ('', 'overrides model_path of the parameter files when set: "reference", '
                   '"tiny" or a local LLaVA-OneVision directory'),
    'cameras': ('', 'overrides cameras of the parameter files when set: image topics, one '
                'memory each, as one name or a YAML list, e.g. "[front/image_raw, '
                'rear/image_raw/compressed]"; relative names resolve in the namespace'),
    'compressed': ('', 'overrides compressed when set: true subscribes '
                   'sensor_msgs/CompressedImage; one value for all cameras or a list with '
                   'one per camera, e.g. "[false, true]"'),
    'image_topic': ('', 'one camera: the same as cameras:=<topic> (not both)'),
}


def _yaml_list(name: str, text: str, kind: type) -> list:
    """
    Parse launch argument ``name``, one value or a YAML list, into a list of ``kind``.

    Raises:
        ValueError: the text is not YAML, or an item is not a ``kind``.
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f'launch argument {name}: {text!r} is not YAML: {err}') from err
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, kind) for item in items):
        raise ValueError(f'launch argument {name}: give one {kind.__name__} or a YAML list of '
                         f'them ("[a, b]"); got {text!r}')
    return items


def _livevlm_node(context, *args, **kwargs):
    """Build the node, adding the overrides that were given (empty arguments are unset)."""
    def given(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    overrides = {
        'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool),
        'autostart': ParameterValue(LaunchConfiguration('autostart'), value_type=bool),
    }
    if given('model_path'):
        overrides['model_path'] = given('model_path')
    if given('image_topic') and given('cameras'):
        raise ValueError('launch arguments image_topic and cameras: give one of them')
    if given('image_topic'):
        overrides['cameras'] = [given('image_topic')]
    if given('cameras'):
        overrides['cameras'] = _yaml_list('cameras', given('cameras'), str)
    if given('compressed'):
        overrides['compressed'] = _yaml_list('compressed', given('compressed'), bool)
    files = [LaunchConfiguration('params_file')]
    if given('model_params_file'):
        files.append(LaunchConfiguration('model_params_file'))
    return [LifecycleNode(
        package='ros2_livevlm', executable='livevlm_node',
        name=LaunchConfiguration('node_name'), namespace=LaunchConfiguration('namespace'),
        output='screen', parameters=[*files, overrides],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')])]


def generate_launch_description():
    """Declare the arguments and the node."""
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, (default, description) in ARGUMENTS.items()),
        OpaqueFunction(function=_livevlm_node),
    ])
