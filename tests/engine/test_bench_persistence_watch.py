# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The memory-file and watch benchmarks, light: they run on the reference model and agree."""

from __future__ import annotations

from ros2_livevlm.bench import persistence
from ros2_livevlm.bench import watch


def test_persistence_benchmark_reloads_every_policy_to_the_same_answers(capsys) -> None:
    persistence.main(['--frames', '24', '--repeats', '1'])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith(('| livevlm |', '| full |'))]
    assert len(rows) == 2 and all(row.endswith('| yes |') for row in rows)


def test_watch_benchmark_fires_in_the_watched_scene(capsys) -> None:
    watch.main(['--clips', '1', '--holds', '1'])
    printed = capsys.readouterr().out
    assert '"Did you see a newspaper?"' in printed and 'newspaper in view 50-90 s' in printed
    (row,) = [line for line in printed.splitlines() if line.startswith('| 1 | 1 |')]
    assert 'yes@50s (+0s)' in row and row.split('|')[4].strip() == '0'  # no false event
