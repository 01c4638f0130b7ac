# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
``colcon build`` and ``colcon test`` of this package with the ROS 2 wheels, as on a ROS machine.

The package is copied into a fresh workspace (as a clone in ``src/`` would be; the
development venv inside the repository must not be inside the package's source tree, or
CMake refuses its include paths), then built; the installed prefix must hold the
generated interfaces next to the whole Python package, the ``ros2 run`` executables and
the launch and parameter files. ``colcon test`` then runs a small subset of the suite
(``LIVEVLM_TESTS``: the linters and the image conversion tests; the whole suite is the
default) through ament_cmake_pytest, and ``colcon test-result`` must count exactly the
test cases those two ran (and CTest's record of each), none failed.
"""

import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ElementTree

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = ('package.xml', 'CMakeLists.txt', 'setup.py', 'setup.cfg', 'LICENSE',
                 'CHANGELOG.rst', 'msg', 'srv', 'action', 'ros2_livevlm', 'launch', 'config',
                 'scripts', 'tests')
COLCON_TESTS = {'test_lint': 'test_lint.py', 'ros_test_image': 'ros/test_image.py'}
"""ctest name -> entry of tests/ that the workspace's ``colcon test`` runs."""


def _colcon(workspace: Path, *args: str, timeout: float = 600) -> str:
    """Run ``colcon ARGS`` in ``workspace`` on the venv's ROS prefix; return its stdout."""
    prefix = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    colcon = Path(sys.executable).parent / 'colcon'
    result = subprocess.run([str(colcon), *args], env=env, cwd=workspace, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_colcon_build_installs_a_complete_package_and_colcon_test_runs_it(tmp_path):
    source = tmp_path / 'src' / 'ros2_livevlm'
    source.mkdir(parents=True)
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy2(ROOT / name, source / name)
    _colcon(tmp_path, 'build', '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}',
            '-DLIVEVLM_TESTS=' + ';'.join(COLCON_TESTS.values()))

    install = tmp_path / 'install' / 'ros2_livevlm'
    for name in ('livevlm_node', 'livevlm_demo', 'livevlm-run'):
        assert os.access(install / 'lib' / 'ros2_livevlm' / name, os.X_OK), name
    share = install / 'share' / 'ros2_livevlm'
    for path in ('launch/livevlm.launch.py', 'launch/two_robots.launch.py',
                 'config/livevlm.yaml', 'package.xml', 'requirements.txt',
                 'requirements-distro.txt', 'constraints-humble.txt'):
        assert (share / path).is_file(), path

    site = Path(sysconfig.get_path('purelib', vars={'base': str(install)}))
    probe = ('import ros2_livevlm, ros2_livevlm.ros.node as node; '
             'from ros2_livevlm.srv import Query; from ros2_livevlm.action import Ask; '
             'print(ros2_livevlm.__file__, node.__file__, Query.Request().max_new_tokens)')
    run = subprocess.run(
        ['bash', '-c', f'source {tmp_path}/install/setup.bash && {sys.executable} -c "{probe}"'],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    package_file, node_file, default = run.stdout.split()
    assert package_file.startswith(str(site)) and node_file.startswith(str(site))
    assert default == '0'

    _colcon(tmp_path, 'test', '--return-code-on-test-failure')
    results = tmp_path / 'build' / 'ros2_livevlm' / 'test_results' / 'ros2_livevlm'
    cases = {name: len(ElementTree.parse(results / f'{name}.xunit.xml').findall('.//testcase'))
             for name in COLCON_TESTS}
    assert all(count > 0 for count in cases.values()), cases
    summary = _colcon(tmp_path, 'test-result', '--all')
    match = re.search(r'Summary: (\d+) tests, (\d+) errors, (\d+) failures, (\d+) skipped',
                      summary)
    assert match, summary
    # pytest's test cases, plus CTest's own record (Testing/*/Test.xml) of each registered test
    expected = sum(cases.values()) + len(COLCON_TESTS)
    assert [int(n) for n in match.groups()] == [expected, 0, 0, 0], summary
    print(f'colcon test: {cases}; {match.group(0)}')
