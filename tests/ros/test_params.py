# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""Parameters: declared once from the config dataclasses, YAML in step, bad values named."""

from __future__ import annotations

from dataclasses import fields
from dataclasses import replace
from pathlib import Path

import pytest
import rclpy
from rclpy.parameter import Parameter
from ros2_livevlm.config import EngineConfig
from ros2_livevlm.config import MemoryConfig
from ros2_livevlm.ros.node import LiveVLMNode
from ros2_livevlm.ros.params import all_parameters
from ros2_livevlm.ros.params import read_settings
import yaml


YAML = Path(__file__).resolve().parents[2] / 'config' / 'livevlm.yaml'


@pytest.fixture
def make_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(**overrides) -> LiveVLMNode:
        node = LiveVLMNode(context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in overrides.items()])
        nodes.append(node)
        return node
    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown(context=context)


NAMES = list(all_parameters())


def test_every_parameter_is_declared_typed_with_a_description_and_range(make_node):
    assert {f.name for c in (MemoryConfig, EngineConfig) for f in fields(c)} <= set(NAMES)
    node = make_node()
    for name in NAMES:
        descriptor = node.describe_parameter(name)
        assert descriptor.description and descriptor.type and not descriptor.dynamic_typing
    budget = node.describe_parameter('budget_tokens')
    assert (budget.integer_range[0].from_value, budget.read_only) == (1, False)
    assert node.describe_parameter('retrieval_ratio').floating_point_range[0].to_value == 1.0
    policy = node.describe_parameter('policy')
    assert 'one of: full, recent_frames' in policy.additional_constraints
    assert node.describe_parameter('autostart').read_only
    settings = read_settings(node)
    # sized for the default model (ros2_livevlm.reference.MEMORY_SETTINGS)
    assert settings.memory == replace(MemoryConfig(), budget_tokens=448, observation_tokens=32)
    assert settings.engine == replace(EngineConfig(), frames_per_clip=8)
    assert [c.name for c in settings.cameras] == ['image'] and not settings.cameras[0].compressed
    assert settings.cameras[0].reliability == 'auto'


def test_yaml_lists_exactly_the_declared_parameters(make_node):
    values = yaml.safe_load(YAML.read_text())['/**']['ros__parameters']
    node = make_node(**values)
    assert sorted(values) == sorted(NAMES)
    assert all(node.has_parameter(name) for name in values)
    memory = MemoryConfig(**{f.name: values[f.name] for f in fields(MemoryConfig)})
    assert read_settings(node).memory == memory  # every value of the file arrives
    defaults = make_node()  # the file states the declared defaults, no other values
    assert {name: defaults.get_parameter(name).value for name in values} == values


@pytest.mark.parametrize('overrides, named', [
    ({'sample_fps': -1.0}, 'sample_fps'),
    ({'sample_fps': 'fast'}, 'sample_fps'),
    ({'budget_tokens': 0}, 'budget_tokens'),
    ({'policy': 'lru'}, 'policy'),
    ({'cameras': ['a', 'b'], 'compressed': [True, False, True]}, 'compressed'),
    ({'qos_reliability': ['sometimes']}, 'qos_reliability'),
    ({'max_pending_questions': 65}, 'max_pending_questions'),
    ({'cameras': ['a', 'a']}, 'cameras'),
])
def test_bad_values_fail_configure_naming_the_parameter(make_node, overrides, named, capfd):
    node = make_node(**overrides)  # a bad value given at start does not stop the node
    assert node.trigger_configure() != rclpy.lifecycle.TransitionCallbackReturn.SUCCESS
    assert f'bad parameter {named}' in capfd.readouterr().err


def test_integer_for_a_float_is_accepted(make_node):
    node = make_node(sample_fps=2, cameras=['front', 'rear'], compressed=[True, False])
    settings = read_settings(node)
    assert settings.sample_fps == 2.0
    assert [(c.name, c.compressed) for c in settings.cameras] == [('front', True), ('rear', False)]


def test_a_budget_of_few_frames_is_warned_about(make_node, capfd):
    node = make_node(model_path='reference', budget_tokens=48)  # 3 frames of 16 tokens
    assert node.trigger_configure() == rclpy.lifecycle.TransitionCallbackReturn.SUCCESS
    assert 'budget_tokens=48 holds fewer than 4 frames' in capfd.readouterr().err
    node.trigger_cleanup()
