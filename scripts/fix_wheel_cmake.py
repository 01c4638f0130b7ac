# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Point the ROS 2 wheels' exported CMake targets at this interpreter's include dirs.

The wheels' ``share/**/*.cmake`` name include directories of the machine that built
them (``/opt/python/cp311-cp311/...``); CMake refuses non-existent paths, so building
any interface package against them fails. Usage: ``python fix_wheel_cmake.py PREFIX``
with the interpreter of the environment whose prefix is PREFIX. Idempotent.
"""

from pathlib import Path
import sys
import sysconfig

import numpy

BUILD_PREFIX = '/opt/python/cp311-cp311'
WRONG_TO_RIGHT = {
    f'{BUILD_PREFIX}/lib/python3.11/site-packages/numpy/_core/include': numpy.get_include(),
    f'{BUILD_PREFIX}/include/python3.11': sysconfig.get_paths()['include'],
}


def main(argv: list[str]) -> int:
    """Rewrite the include paths under ``argv[0]/share``; print how many files changed."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    changed = 0
    for path in Path(argv[0], 'share').rglob('*.cmake'):
        text = path.read_text()
        fixed = text
        for wrong, right in WRONG_TO_RIGHT.items():
            fixed = fixed.replace(wrong, right)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    print(f'fix_wheel_cmake: {changed} CMake file(s) updated under {argv[0]}/share')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
