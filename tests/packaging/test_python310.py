# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
ROS 2 Humble and JetPack 6 run Python 3.10: the package must compile and install there.

With the Python 3.10 interpreter of these machines (``PYENV_VERSION=3.10.13 python3.10``;
``LIVEVLM_PYTHON310`` names another): the package byte-compiles
(``python3.10 -m compileall``), every standard-library name it uses exists in 3.10
(``scripts/check_stdlib_names.py``), and ``requirements-distro.txt`` with
``constraints-humble.txt`` resolves on the package index for Python 3.10 on x86_64 and on
JetPack 6 (aarch64, glibc 2.35), as ``pip install --dry-run`` (reads the index, installs
nothing). torch is left out of the resolution: it is the platform's (NVIDIA's wheel on
JetPack); its range is checked against the versions it must admit and refuse.

The engine tests do not run here under 3.10: the only torch for Python 3.10 on the index
is a CUDA build, a 527 MB wheel that pulls 15 ``nvidia-*`` CUDA library packages (cuDNN,
cuBLAS, ...; 5.3 GB installed, 143 s to install on the 2-core machine), too much for each
CI run; ``make test-py310`` runs them by hand.
"""

import os
from pathlib import Path
import shutil
import subprocess

from packaging.requirements import Requirement
from packaging.version import Version
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / 'scripts'
SOURCES = ('ros2_livevlm', 'launch', 'tests', 'scripts', 'setup.py')
JETPACK6 = ['--platform', 'manylinux_2_35_aarch64', '--platform', 'manylinux_2_28_aarch64',
            '--platform', 'manylinux_2_17_aarch64', '--platform', 'manylinux2014_aarch64',
            '--python-version', '3.10', '--implementation', 'cp', '--abi', 'cp310']
"""pip's target options for JetPack 6: Ubuntu 22.04 (glibc 2.35) on aarch64, CPython 3.10."""


def _requirements(name: str) -> dict[str, Requirement]:
    lines = (SCRIPTS / name).read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line and not line.startswith('#')]
    return {requirement.name: requirement for requirement in requirements}


@pytest.fixture(scope='module')
def python310() -> tuple[str, dict[str, str]]:
    """Return the Python 3.10 interpreter and the environment to run it in."""
    env = dict(os.environ, PYENV_VERSION=os.environ.get('PYENV_VERSION', '3.10.13'))
    executable = os.environ.get('LIVEVLM_PYTHON310') or shutil.which('python3.10')
    assert executable, ('no python3.10 on PATH: install it (pyenv install 3.10.13) or set '
                        'LIVEVLM_PYTHON310 to one')
    version = subprocess.run([executable, '-c', 'import sys; print(sys.version_info[:2])'],
                             env=env, capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == '(3, 10)', version.stdout + version.stderr
    return executable, env


def test_package_byte_compiles_and_uses_only_python310_stdlib(python310, tmp_path):
    executable, env = python310
    env = dict(env, PYTHONPYCACHEPREFIX=str(tmp_path))  # no 3.10 caches in the source tree
    compiled = subprocess.run([executable, '-m', 'compileall', '-q', *SOURCES], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    names = subprocess.run([executable, str(SCRIPTS / 'check_stdlib_names.py'), *SOURCES],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert names.returncode == 0, names.stdout + names.stderr


def _pinned(requirement: Requirement) -> Version:
    (spec,) = requirement.specifier
    assert spec.operator == '==', f'{requirement} is not a pin'
    return Version(spec.version)


def test_distro_requirements_are_pinned_by_the_constraints():
    ranges = _requirements('requirements-distro.txt')
    humble = _requirements('constraints-humble.txt')
    assert set(ranges) - {'torch'} == set(humble), 'pin every requirement but torch'
    for name, pin in humble.items():
        assert ranges[name].specifier.contains(_pinned(pin)), f'{pin} is outside {ranges[name]}'
    assert _pinned(humble['numpy']).major == 1, 'the ROS packages of Humble use numpy 1'
    torch = ranges['torch'].specifier
    # JetPack 6.1's NVIDIA wheel and the development pin; JetPack 6.0's torch lacks
    # scaled_dot_product_attention(enable_gqa=...)
    assert torch.contains('2.5.0a0+872d972e41.nv24.08') and torch.contains('2.13.0')
    assert not torch.contains('2.3.0')


def test_humble_requirements_resolve_for_python310(python310, tmp_path):
    executable, env = python310
    requirements = tmp_path / 'requirements.txt'  # without torch: the platform's
    requirements.write_text(''.join(f'{r}\n' for name, r in
                                    _requirements('requirements-distro.txt').items()
                                    if name != 'torch'))
    runs = {  # side by side: both wait on the index more than on the CPU
        target: subprocess.Popen(
            [executable, '-m', 'pip', 'install', '--dry-run', '--ignore-installed',
             '--only-binary=:all:', '--target', str(tmp_path / target), *options,
             '-r', str(requirements), '-c', str(SCRIPTS / 'constraints-humble.txt')],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for target, options in (('x86_64', []), ('jetpack6-aarch64', JETPACK6))}
    for target, run in runs.items():
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, f'{target}:\n{stdout[-3000:]}{stderr[-3000:]}'
        (would_install,) = [line for line in stdout.splitlines()
                            if line.startswith('Would install')]
        assert {'numpy-1.26.4', 'transformers-5.20.2'} <= set(would_install.split()), target
        print(f'{target}: {would_install}')
