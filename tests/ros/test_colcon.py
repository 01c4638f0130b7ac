# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
``colcon build`` of this package with the ROS 2 wheels, as on a machine with ROS installed.

The package is copied into a fresh workspace (as a clone in ``src/`` would be; the
development venv inside the repository must not be inside the package's source tree, or
CMake refuses its include paths), then built; the installed prefix must hold the
generated interfaces next to the whole Python package, the ``ros2 run`` executables and
the launch and parameter files.
"""

import os
from pathlib import Path
import shutil
import subprocess
import sys
import sysconfig


ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = ('package.xml', 'CMakeLists.txt', 'setup.py', 'setup.cfg', 'msg', 'srv',
                 'action', 'ros2_livevlm', 'launch', 'config', 'scripts')


def test_colcon_build_installs_a_complete_package(tmp_path):
    prefix = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    source = tmp_path / 'src' / 'ros2_livevlm'
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy2(ROOT / name, source / name)
    colcon = Path(sys.executable).parent / 'colcon'
    build = subprocess.run(
        [str(colcon), 'build', '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}',
         '-DBUILD_TESTING=OFF'],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr

    install = tmp_path / 'install' / 'ros2_livevlm'
    for name in ('livevlm_node', 'livevlm_demo', 'livevlm-run'):
        assert os.access(install / 'lib' / 'ros2_livevlm' / name, os.X_OK), name
    share = install / 'share' / 'ros2_livevlm'
    for path in ('launch/livevlm.launch.py', 'config/livevlm.yaml', 'package.xml',
                 'requirements.txt'):
        assert (share / path).is_file(), path

    site = Path(sysconfig.get_path('purelib', vars={'base': str(install)}))
    probe = ('import ros2_livevlm, ros2_livevlm.ros.node as node; '
             'from ros2_livevlm.srv import Query; from ros2_livevlm.action import Ask; '
             'print(ros2_livevlm.__file__, node.__file__, Query.Request().max_new_tokens)')
    run = subprocess.run(
        ['bash', '-c', f'source {tmp_path}/install/setup.bash && {sys.executable} -c "{probe}"'],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    package_file, node_file, default = run.stdout.split()
    assert package_file.startswith(str(site)) and node_file.startswith(str(site))
    assert default == '0'
