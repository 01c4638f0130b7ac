# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
r"""
``evaluate``: replay a camera bag with timed questions; accuracy, latency and memory per policy.

    evaluate --bag BAG --questions Q.jsonl [--topic /camera/image_raw] [--live] \\
        [--policies full,recent_frames,window,vsb,livevlm,...] [--out reports/evaluate]
    evaluate --live                      # the sample tour (generated into data/ if missing)

Offline (default) the bag is read with rosbags and fed to the engine in this process at
bag stamps (:mod:`.replay`); ``--live`` plays it over DDS into the livevlm node with
``use_sim_time`` and asks on ``~/query`` (:mod:`.live`; ``--attach NODE`` uses a running
node instead of starting one per policy). Every policy of ``--policies`` runs on the same
bag and questions in turn; ``--out`` receives ``records.jsonl``, ``summary.md`` and plots
(:mod:`.report`). Each answer is printed with its evidence time span (seconds from the bag
start), then the summary table.

Question files are described in :mod:`ros2_livevlm.eval.questions`. Without ``--bag``
the sample tour of :mod:`ros2_livevlm.eval.sample` is used (and sampled at its own rate
unless ``--sample-fps`` is given). Memory and engine knobs are the options of
:class:`~ros2_livevlm.config.MemoryConfig` and :class:`~ros2_livevlm.config.EngineConfig`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
import sys

from tqdm import tqdm

from .bag import bag_info
from .bag import BagError
from .bag import BagInfo
from .bag import CameraTopic
from .bag import select_camera
from .questions import load_questions
from .questions import Question
from .questions import QuestionFileError
from .replay import PolicyRun
from .replay import QuestionResult
from .report import PLOTS
from .report import question_range
from .report import RunContext
from .report import write_report
from .sample import DEFAULT_DIR
from .sample import make_sample
from .sample import read_tour
from .sample import sample_dir
from ..checkpoints import default_settings
from ..checkpoints import default_settings_help
from ..checkpoints import REFERENCE
from ..checkpoints import resolve_model_path
from ..checkpoints import TINY
from ..config import add_arguments
from ..config import EngineConfig
from ..config import MemoryConfig
from ..config import POLICIES
from ..config import settings_from_args


MODEL_PATH = REFERENCE
"""The model evaluated unless ``--model-path`` is given (the one place to change the default)."""

MAX_NEW_TOKENS = 8
"""Answer length limit unless ``--max-new-tokens`` is given (the answers are one word)."""

NODE_SAMPLE_FPS = 1.0
"""The node's default ``sample_fps`` (Hz, ``ros/params.py``), for bags but the sample tour."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='evaluate',
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=default_settings_help(),
    )
    data = parser.add_argument_group('bag and questions')
    data.add_argument(
        '--bag',
        type=Path,
        help='rosbag2 directory or file, MCAP or sqlite3, or a sample directory written by '
        'make_sample_bag (default: the sample tour)',
    )
    data.add_argument(
        '--questions',
        type=Path,
        help='question file (JSONL); default with a sample tour: its questions',
    )
    data.add_argument(
        '--topic',
        help="camera topic (Image or CompressedImage); default: the bag's only camera topic",
    )
    data.add_argument(
        '--data-dir',
        type=Path,
        default=DEFAULT_DIR,
        help='where the sample tour is generated (default: %(default)s)',
    )
    run = parser.add_argument_group('run')
    run.add_argument(
        '--live',
        action='store_true',
        help='play the bag over DDS into the node (default: offline)',
    )
    run.add_argument(
        '--attach',
        metavar='NODE',
        help='live, into the running node NODE (e.g. /livevlm) instead of starting one',
    )
    run.add_argument(
        '--policies',
        default=','.join(POLICIES),
        help='comma-separated memory policies (default: every policy)',
    )
    run.add_argument(
        '--model-path',
        default=MODEL_PATH,
        help="'reference' (the project's tiny trained model), 'tiny' (random weights) or a "
        'local LLaVA-OneVision directory (default: %(default)s)',
    )
    run.add_argument(
        '--sample-fps',
        type=float,
        help='frames kept per second of header.stamp time, Hz (default: 1; sample tour: its rate)',
    )
    run.add_argument(
        '--clip-timeout',
        type=float,
        default=0.0,
        help="prefill a partial clip after this long without a sampled frame, s (the node's "
        'idle rule; default 0: never, clips end when full or at a question, so live and '
        'offline build the same clips: the node answers a question that arrives during an '
        'idle prefill without that clip)',
    )
    run.add_argument(
        '--repeats',
        type=int,
        default=1,
        help='times each question is asked (timings of all; default: %(default)s)',
    )
    run.add_argument(
        '--rate',
        type=float,
        default=10.0,
        help='live playback speed, x recorded (default: %(default)s)',
    )
    run.add_argument(
        '--long-range-s',
        type=float,
        default=60.0,
        help='evidence at least this old makes a question long_range, s (default: %(default)s)',
    )
    run.add_argument(
        '--out',
        type=Path,
        default=Path('reports/evaluate'),
        help='report directory (default: %(default)s)',
    )
    run.add_argument('--quiet', action='store_true', help='do not print each answer')
    add_arguments(parser, MemoryConfig, EngineConfig, exclude=('policy',))
    args = parser.parse_args(argv)
    args.policies = [p.strip() for p in args.policies.split(',') if p.strip()]
    unknown = [p for p in args.policies if p not in POLICIES]
    if unknown or not args.policies:
        parser.error(
            f'--policies: unknown {", ".join(unknown) or "(none given)"}; '
            f'choose from {", ".join(POLICIES)}'
        )
    if args.attach:
        args.live = True
    for name in ('sample_fps', 'rate'):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f'--{name.replace("_", "-")} must be > 0')
    if args.repeats < 1 or args.clip_timeout < 0:
        parser.error('--repeats must be >= 1 and --clip-timeout >= 0')
    if args.bag is not None and args.questions is None and sample_root(args.bag) is None:
        parser.error('--questions is required with --bag (only a sample tour brings its own)')
    return args


def adopt_attached_node(args: argparse.Namespace) -> None:
    """
    Take policy, model, sampling and memory/engine settings from the running node ``--attach``.

    Any node works, one started with its defaults included; the bag's camera goes to its
    camera topic of the same message type (``args.attached``). On wall time (no
    ``use_sim_time``) its idle-clip rule (``clip_timeout``) follows wall time, so clip
    boundaries can differ from a replay on sim time; answers are still checked to see
    the newest sampled frame.

    Raises:
        LiveError: the node does not answer or is not active.
    """
    from .live import attach_to_node

    knobs = [f.name for cls in (MemoryConfig, EngineConfig) for f in fields(cls)]
    args.attached = attach_to_node(
        args.attach, ['use_sim_time', 'sample_fps', 'clip_timeout', 'model_path', *knobs]
    )
    values = args.attached.values
    if values['use_sim_time'] is not True:
        print(f'evaluate: node {args.attach} runs on wall time: the bag plays at --rate and '
              'its clip_timeout follows wall time (-p use_sim_time:=true replays bag time)',
              flush=True)
    args.sample_fps, args.clip_timeout, args.model_path = (
        values['sample_fps'],
        values['clip_timeout'],
        values['model_path'],
    )
    args.policies = [values['policy']]
    for name in knobs:
        setattr(args, name, values[name])


def sample_root(bag: Path) -> Path | None:
    """Return the sample tour directory ``bag`` names (it, or its ``bag/``), else None."""
    for candidate in (bag, bag.parent):
        if (candidate / 'tour.json').is_file() and (candidate / 'bag').is_dir():
            return candidate
    return None


def inputs(args: argparse.Namespace) -> tuple[Path, Path, float]:
    """
    Return the bag, question file and sampling rate.

    Given; or a sample tour's (``--bag`` naming one, or the default one, generated if
    missing): its bag, its questions unless ``--questions``, its rate unless
    ``--sample-fps``. The tour is printed.
    """
    sample = sample_root(args.bag) if args.bag is not None else sample_dir(args.data_dir)
    if sample is None:
        return args.bag, args.questions, args.sample_fps or NODE_SAMPLE_FPS
    if not (sample / 'tour.json').is_file():
        print(f'generating the sample tour into {sample} ...', flush=True)
        make_sample(sample)
    tour = read_tour(sample)
    print(
        'sample tour: '
        + ', '.join(f'{r["scene"]} {r["start_s"]:.0f}-{r["end_s"]:.0f} s' for r in tour['runs'])
    )
    return (
        sample / 'bag',
        args.questions or sample / 'questions.jsonl',
        args.sample_fps or tour['sample_fps'],
    )


def schedule(
    questions: Sequence[Question],
    info: BagInfo,
    camera: CameraTopic,
    source: str | Path = 'questions',
) -> list[tuple[int, Question]]:
    """
    ``(asked_ns, question)`` sorted by bag time (file order among equal times).

    Raises:
        QuestionFileError: a question about another camera, or an absolute time before the
            bag (the message names ``source``, the line and the field).
    """
    timed = []
    for q in questions:
        where = f'{source}:{q.line}'
        if q.camera and q.camera != camera.topic:
            raise QuestionFileError(
                f"{where}: field 'camera': {q.camera} is not the replayed topic "
                f'{camera.topic}; pass --topic {q.camera}'
            )
        asked_ns = q.time.resolve(info.start_ns)
        if asked_ns < info.start_ns:
            raise QuestionFileError(
                f"{where}: field 'time': {asked_ns * 1e-9:.3f} s is before the bag start "
                f'{info.start_ns * 1e-9:.3f} s (a number is seconds from the bag start; an '
                'object {"sec", "nanosec"} is an absolute stamp)'
            )
        timed.append((asked_ns, q))
    return sorted(timed, key=lambda item: item[0])


def format_result(policy: str, result: QuestionResult, ctx: RunContext) -> str:
    """One printed line: time, kind, question, answer, verdict, evidence span, TTFT."""
    t = (result.asked_ns - ctx.start_ns) * 1e-9
    q = result.question
    head = f'[{policy}] t={t:6.1f} s {q.kind:<9} {q.question:<40.40} -> '
    if result.error:
        return head + f'error: {result.error}'
    spans = ', '.join(
        f'{a - ctx.start_ns * 1e-9:.1f}-{b - ctx.start_ns * 1e-9:.1f} s'
        for a, b in result.evidence[:2]
    )
    verdict = 'right' if result.correct else 'wrong'
    return (
        f'{head}{result.text!r:<14} {verdict} '
        f'(expected {q.answer}; {question_range(result, ctx)}) '
        f'evidence {spans or "none"} | ttft {1e3 * min(result.ttft_s):.1f} ms'
    )


def run_policies(
    args: argparse.Namespace,
    bag: Path,
    camera: CameraTopic,
    info: BagInfo,
    timed: list,
    ctx: RunContext,
) -> list[PolicyRun]:
    """Replay the bag once per policy, offline or live, printing answers as they come."""
    settings = {
        'max_new_tokens': MAX_NEW_TOKENS,
        **default_settings(args.model_path),
        **settings_from_args(args, MemoryConfig, EngineConfig),
    }
    runs = []
    if args.live:
        from .live import LiveOptions
        from .live import replay_live

        options = LiveOptions(
            node_name=(args.attach or 'livevlm_eval').lstrip('/'),
            attach=bool(args.attach),
            rate=args.rate,
            log_dir=args.out,
        )
        if args.attach:
            options = args.attached.options(options, camera)
    else:
        from .replay import replay_offline
        from .replay import warm_up
        from ..engine import StreamingVLM

        base = StreamingVLM.from_pretrained(args.model_path, **settings)
        warm_up(base)
    for policy in args.policies:
        with tqdm(
            total=camera.count, desc=f'{policy:>13}', unit='msg', leave=False, disable=None
        ) as bar:

            def show(result: QuestionResult, policy: str = policy) -> None:
                if not args.quiet:
                    bar.write(format_result(policy, result, ctx))

            common = {
                'sample_fps': ctx.sample_fps, 'repeats': args.repeats, 'progress': bar,
                'on_result': show,
            }
            if args.live:
                run = replay_live(
                    policy,
                    bag,
                    camera,
                    info.start_ns,
                    timed,
                    settings=settings,
                    model_path=args.model_path,
                    clip_timeout=args.clip_timeout,
                    options=options,
                    **common,
                )
            else:
                run = replay_offline(
                    base, policy, bag, camera, timed, clip_timeout=args.clip_timeout, **common
                )
        runs.append(run)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``evaluate``; returns the exit code (2: bad input, 1: a failed run)."""
    args = parse_args(argv)
    try:
        if args.attach:
            adopt_attached_node(args)
        resolve_model_path(args.model_path)
        bag, questions_path, sample_fps = inputs(args)
        info = bag_info(bag)
        camera = select_camera(info, args.topic)
        timed = schedule(load_questions(questions_path), info, camera, questions_path)
    except (BagError, QuestionFileError, ValueError) as err:
        print(f'evaluate: error: {err}', file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f'evaluate: failed: {err}', file=sys.stderr)
        return 1
    ctx = RunContext(
        mode='live' if args.live else 'offline',
        bag=str(bag),
        topic=camera.topic,
        start_ns=info.start_ns,
        sample_fps=sample_fps,
        repeats=args.repeats,
        model_path=str(args.model_path),
        random_model=str(args.model_path) == TINY,
        long_range_s=args.long_range_s,
    )
    print(
        f'evaluate: {ctx.mode} replay of {bag} '
        f'({camera.topic}, {camera.msgtype}, {camera.count} msgs, '
        f'{info.duration_s:.0f} s), {len(timed)} questions, sample_fps {sample_fps:g} Hz, '
        f'policies {", ".join(args.policies)}, model {args.model_path}',
        flush=True,
    )
    try:
        runs = run_policies(args, bag, camera, info, timed, ctx)
    except ValueError as err:
        print(f'evaluate: error: {err}', file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f'evaluate: failed: {err}', file=sys.stderr)
        return 1
    out, summary = write_report(runs, ctx, args.out)
    print()
    print(summary)
    print(f'report: {out}/summary.md, records.jsonl, memory_trace.jsonl, {", ".join(PLOTS)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
