# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Pip packaging of ros2_livevlm (the development set-up and machines without ROS).

The package's requirements are the ranges of ``scripts/requirements-distro.txt`` (pinned
per platform by ``scripts/constraints-*.txt``; the development venv pins
``scripts/requirements*.txt``); the console scripts are in ``setup.cfg`` (CMake reads the
same list for ``ros2 run``); the version in ``package.xml``.
"""

from pathlib import Path
import re

from setuptools import find_packages
from setuptools import setup

HERE = Path(__file__).resolve().parent


def requirements(name: str) -> list[str]:
    """Return the requirement lines of ``scripts/<name>`` (comments and blanks dropped)."""
    lines = (HERE / 'scripts' / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def package_version() -> str:
    """Return the ``<version>`` of package.xml."""
    match = re.search(r'<version>([^<]+)</version>', (HERE / 'package.xml').read_text())
    if match is None:
        raise RuntimeError('package.xml has no <version>')
    return match.group(1).strip()


setup(
    version=package_version(),
    packages=find_packages(include=['ros2_livevlm', 'ros2_livevlm.*']),
    package_data={'ros2_livevlm.reference': ['livevlm-reference/*']},  # the committed model
    install_requires=requirements('requirements-distro.txt'),
    extras_require={
        'ros': requirements('requirements-ros.txt'),
        'dev': requirements('requirements-dev.txt'),
    },
)
