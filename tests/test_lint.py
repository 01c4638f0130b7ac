# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
ament linters on the whole package: engine, backends, node, launch, packaging and tests.

flake8 with the ROS configuration (ament_flake8) and pep257 (ament_pep257, ament
convention; Google-style ``Args:`` sections allowed). ament_copyright and ament_xmllint
have no PyPI wheels: the copyright check is the header test below and package.xml is
checked by catkin_pkg's parser (format 3 rules).
"""

from pathlib import Path
import py_compile
import shutil
import subprocess
import sys

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
LINTED = ['ros2_livevlm', 'launch', 'tests', 'setup.py', 'scripts']


def _lint(tool: str, *args: str) -> None:
    """Run an ament linter in its own process (flake8 forks workers: not from this one)."""
    paths = [str(ROOT / path) for path in LINTED]
    # on PATH on a ROS machine (/opt/ros/<distro>/bin), beside the interpreter in a venv
    executable = shutil.which(tool) or str(Path(sys.executable).parent / tool)
    result = subprocess.run([executable, *paths, *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_flake8():
    _lint('ament_flake8')


def test_pep257():
    _lint('ament_pep257', '--add-ignore', 'D406', 'D407', 'D413')


def test_copyright_headers():
    paths = [ROOT / path for path in LINTED]
    files = [f for path in paths if path.is_dir() for f in sorted(path.rglob('*.py'))]
    files += [path for path in paths if path.is_file()] + [ROOT / 'CMakeLists.txt']
    missing = [str(f.relative_to(ROOT)) for f in files
               if 'SPDX-License-Identifier: Apache-2.0' not in f.read_text()[:300]]
    assert not missing, f'files without the Apache-2.0 copyright header: {missing}'


def test_package_xml():
    warnings: list[str] = []
    package = parse_package(str(ROOT / 'package.xml'), warnings=warnings)
    assert not warnings, warnings
    assert package.package_format == 3 and package.name == 'ros2_livevlm'
    assert [str(license_) for license_ in package.licenses] == ['Apache-2.0']
    assert package.get_build_type() == 'ament_cmake'
    exec_depends = {dep.name for dep in package.exec_depends}
    assert {'rclpy', 'sensor_msgs', 'std_srvs', 'diagnostic_msgs', 'lifecycle_msgs',
            'action_msgs', 'rosidl_default_runtime'} <= exec_depends
    test_depends = {dep.name for dep in package.test_depends}
    assert {'ament_cmake_pytest', 'ament_flake8', 'ament_pep257', 'python3-pytest'} <= \
        test_depends


def test_license_and_changelog():
    license_text = (ROOT / 'LICENSE').read_text()
    assert license_text.split()[:4] == ['Apache', 'License', 'Version', '2.0,']
    assert 'END OF TERMS AND CONDITIONS' in license_text
    # catkin_generate_changelog's layout; the newest section is unreleased or this version
    lines = (ROOT / 'CHANGELOG.rst').read_text().splitlines()
    version = parse_package(str(ROOT / 'package.xml')).version
    assert lines[1] == 'Changelog for package ros2_livevlm'
    assert lines[4] in ('Forthcoming', version) or lines[4].startswith(f'{version} (')
    assert set(lines[5]) == {'-'} and lines[6].startswith('* ')


def test_launch_files_compile():
    launch_files = sorted((ROOT / 'launch').glob('*.launch.py'))
    assert len(launch_files) >= 2
    for path in launch_files:
        py_compile.compile(str(path), doraise=True)
