# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Every executable of setup.cfg's ``console_scripts`` answers ``--help`` and does nothing else.

The executables are the ones ``ros2 run ros2_livevlm NAME`` runs: ``lib/ros2_livevlm``
under the package's prefix, found through the ament index as ``ros2 run`` finds them
(``.venv`` in the development set-up, the install prefix under ``colcon test``). They run
side by side, each in its own process.
"""

import configparser
from pathlib import Path
import subprocess

from ament_index_python.packages import get_package_prefix

ROOT = Path(__file__).resolve().parents[1]


def console_scripts() -> list[str]:
    """Return the executable names of setup.cfg's ``console_scripts`` (the one list)."""
    config = configparser.ConfigParser()
    config.read(ROOT / 'setup.cfg')
    lines = config['options.entry_points']['console_scripts'].strip().splitlines()
    return [line.split('=')[0].strip() for line in lines]


def test_every_executable_answers_help():
    names = console_scripts()
    assert {'livevlm_node', 'livevlm_demo', 'livevlm-run'} <= set(names)
    directory = Path(get_package_prefix('ros2_livevlm')) / 'lib' / 'ros2_livevlm'
    runs = {name: subprocess.Popen([str(directory / name), '--help'], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True) for name in names}
    outputs = {name: run.communicate(timeout=120)[0] for name, run in runs.items()}
    for name, output in outputs.items():
        assert runs[name].returncode == 0, f'{name} --help: exit code {runs[name].returncode}'
        assert output.startswith(f'usage: {name} '), f'{name} --help printed:\n{output}'
    # the node points to its parameters: the installed parameter file and ros2 param
    assert 'config/livevlm.yaml' in outputs['livevlm_node']
    assert 'ros2 param describe' in outputs['livevlm_node']


def test_node_refuses_options_that_are_not_ros_arguments():
    node = Path(get_package_prefix('ros2_livevlm')) / 'lib' / 'ros2_livevlm' / 'livevlm_node'
    run = subprocess.run([str(node), '-p', 'autostart:=true'], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2
    assert 'unrecognized arguments: -p' in run.stderr
