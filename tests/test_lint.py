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
import subprocess
import sys

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
LINTED = ['ros2_livevlm', 'launch', 'tests', 'setup.py', 'scripts']


def _lint(tool: str, *args: str) -> None:
    """Run an ament linter in its own process (flake8 forks workers: not from this one)."""
    paths = [str(ROOT / path) for path in LINTED]
    result = subprocess.run([str(Path(sys.executable).parent / tool), *paths, *args],
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


def test_launch_file_compiles():
    py_compile.compile(str(ROOT / 'launch' / 'livevlm.launch.py'), doraise=True)
