# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Train the reference model: a tiny LLaVA-OneVision that answers streaming recall questions.

    python -m ros2_livevlm.reference.train_reference [--out DIR] [--seed 0] [--steps N]
    python -m ros2_livevlm.reference.train_reference --evaluate reference

Builds the tokenizer (BPE merges learned so every answer word is one token) and a tiny
LLaVA-OneVision of :data:`REFERENCE_SPEC` (SigLIP tower, projector, Qwen2 with GQA: the
classes of real checkpoints), trains it end to end with full attention only (never
through a memory policy) on real-photo streams of :mod:`.task` in the engine's prompt
layout (:mod:`.data`), saves it with ``save_pretrained`` (float16 safetensors, tokenizer,
processor config), loads it back through the product's loader and reports the accuracy
of the streaming engine (policy ``full``) on held-out streams of 16, 64 and 256 frames.
``--evaluate PATH`` only does the last step (``reference`` = the committed checkpoint).

Deterministic for a seed on one machine and thread count (floating-point sums may differ
across CPUs and thread counts, so the weights may too; the accuracy is what is reproduced).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import asdict
from dataclasses import dataclass
import logging
import math
from pathlib import Path
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import MEMORY_SETTINGS
from .data import FrameBank
from .data import IGNORE
from .data import Packer
from .data import sample_batch
from .task import Episode
from .task import held_out_seed
from .task import make_episode
from .task import NOMINAL_RUN_FRAMES
from .task import tokenizer_corpus
from .task import TRAIN_SEED_TAG
from ..config import cache_dir
from ..config import EngineConfig
from ..engine import StreamingVLM
from ..models import LlavaOnevision
from ..models import TinySpec
from ..models.llava_onevision import INIT_TEMPLATE
from ..models.llava_onevision import QUESTION_PREFIX
from ..models.llava_onevision import QUESTION_SUFFIX
from ..models.tiny import make_tiny_model
from ..models.tiny import make_tokenizer
from ..models.tiny import save_checkpoint


log = logging.getLogger(__name__)

REFERENCE_SPEC = TinySpec(
    image_size=32,
    patch_size=4,
    vision_hidden=48,
    vision_layers=2,
    vision_heads=4,
    hidden=128,
    layers=4,
    heads=4,
    kv_heads=2,
    intermediate=256,
    rope_theta=1_000_000.0,
)
"""
Widths of the reference model.

32-px frames in 4-px patches: 8x8 SigLIP tokens (48 wide, 2 layers), 16 per frame after
the 2x2 pooling; Qwen2 128 wide (MLP 256), 4 layers, 4 query / 2 KV heads of 32, RoPE base
10^6 as Qwen2 (with 16 rotary frequencies per head about half of them turn less than a
radian over a 256-frame stream, so content can be matched across it; v1's heads of 16
needed base 10^4 to keep enough frequencies for positions). 0.78 M parameters, 1.6 MB in
float16. Heads of 32 dimensions make the rotation-free ``q . k`` that PaR, ClusterKV and
ReKV rank with a less noisy proxy of the attention; two LLM layers learned "now" and
"first" but not "Did you see X?" (v1).
"""


@dataclass(frozen=True)
class TrainConfig:
    """
    Training settings. Two phases share one optimizer and one learning-rate schedule.

    Attributes:
        seed: seeds the model init, the frame bank and every batch (the batches draw from
            ``[TRAIN_SEED_TAG, seed]``, apart from every held-out stream).
        recognition_steps: phase 1 steps: one-frame streams, each asked "what are you
            looking at now?" and "Did you see the X?" once with "yes" and once with "no"
            (the vision tower and projector learn to name the scenes, as LLaVA's alignment
            stage does, and the LLM learns to bind a scene's name in a question to its
            frames where there is only one frame to look at). Without the presence
            questions here, presence never got past chance with 24 scenes (it always
            answered "yes"): with 12 scenes it was learned after about 250 phase 2 steps,
            with 24 not within 400, and phase 2 gives each name half as many questions.
        recognition_batch: streams per phase 1 step.
        recognition_questions: questions per phase 1 stream (``now`` and a presence
            "yes" and "no").
        steps: phase 2 steps: streams of a length curriculum, several questions each.
        frames_per_step: frames per phase 2 step, split into as many streams of the
            step's length as fit (at least one): every step costs about the same.
        min_frames: shortest phase 2 stream, frames.
        max_frames: longest phase 2 stream, frames (the longest the quality benchmark
            evaluates).
        hold: share of phase 2 on streams of at most ``start_frames`` (presence and order
            are learned on short streams first: mixed with long ones from the start,
            neither got past 60-65 % in 1,000 steps).
        growth: share of phase 2 by whose end the longest drawn length has grown
            geometrically from ``start_frames`` to ``max_frames``; lengths are drawn
            log-uniformly between ``min_frames`` and the current longest.
        start_frames: longest stream at the start of phase 2.
        questions_per_stream: questions packed after each phase 2 stream (half as many as
            it has frames if fewer, at least 2), so every step asks about 128 questions
            whatever the length (with 12, long-stream steps asked a few dozen and presence
            fell back to "yes" as the streams grew); question tokens stay a minor cost.
        run_frames: ``(min, max)`` frames per scene run at the nominal length (16 frames;
            :func:`~ros2_livevlm.reference.task.run_frames` scales them; the sample tour
            uses them as they are).
        lr: peak AdamW learning rate (linear warm-up, cosine decay to 10 %).
        warmup_steps: warm-up steps.
        weight_decay: AdamW weight decay of matrices.
        noise: extra pixel noise, max standard deviation in normalized units.
        stretch_prob: share of phase 2 streams trained with randomized positions
            (random gaps between frames, :meth:`.data.Packer.context_positions`): the
            gaps ``positions: original`` leaves after eviction, and distances beyond the
            longest stream.
        max_span: video positions a stretched stream may span (6,144 = 384 frames of 16
            tokens).
        dwells_per_scene: frame bank dwells per scene.
        dwell_frames: frames per frame bank dwell (longer runs join dwells).
        eval_lengths: held-out stream lengths of the final check, frames.
        eval_streams: held-out streams per length.
        eval_questions: questions per held-out stream.
        log_every: steps between training log lines.
    """

    seed: int = 0
    recognition_steps: int = 200
    recognition_batch: int = 64
    recognition_questions: int = 3
    steps: int = 1400
    frames_per_step: int = 256
    min_frames: int = 4
    max_frames: int = 256
    hold: float = 0.4
    growth: float = 0.8
    start_frames: int = 16
    questions_per_stream: int = 32
    run_frames: tuple[int, int] = NOMINAL_RUN_FRAMES
    lr: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    noise: float = 0.05
    stretch_prob: float = 0.25
    max_span: int = 6144
    dwells_per_scene: int = 32
    dwell_frames: int = 12
    eval_lengths: tuple[int, ...] = (16, 64, 256)
    eval_streams: int = 12
    eval_questions: int = 10
    log_every: int = 100


LONG_FRAMES = 64
"""Streams of at least this many frames are also tallied apart in the training log."""


def reference_tokenizer(system_prompt: str):
    """Build the reference tokenizer: BPE merges learned on the task and the chat template."""
    chat = [INIT_TEMPLATE.format(system_prompt=system_prompt), QUESTION_PREFIX, QUESTION_SUFFIX]
    for special in ('<|im_start|>', '<|im_end|>'):
        chat = [text.replace(special, ' ') for text in chat]
    return make_tokenizer(tokenizer_corpus() + chat * 20, vocab_size=512)


def init_for_width(hf: torch.nn.Module, embedding_std: float = 0.1) -> None:
    """
    Re-initialize the LLM, LM head and projector for a tiny width (in place).

    HF's ``initializer_range`` (0.02) suits widths of about a thousand; at width 64 it
    leaves the attention logits near zero and training stalls. Linear weights get
    LeCun-normal ``std = fan_in ** -0.5``, embeddings ``embedding_std``; biases stay zero
    and norms one. The SigLIP tower keeps its own (width-aware) init.
    """
    for root in (hf.model.language_model, hf.lm_head, hf.model.multi_modal_projector):
        for module in root.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=module.in_features**-0.5)
            elif isinstance(module, torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, std=embedding_std)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))


def _initial_model(cfg: TrainConfig, tokenizer) -> LlavaOnevision:
    """Initialize a model, round-tripped through ``save_pretrained`` and the product's loader."""
    torch.manual_seed(cfg.seed)
    hf = make_tiny_model(REFERENCE_SPEC, tokenizer, seed=cfg.seed)
    init_for_width(hf)
    with tempfile.TemporaryDirectory(prefix='reference-init-') as tmp:
        path = save_checkpoint(Path(tmp) / 'init', hf, tokenizer, REFERENCE_SPEC.image_size)
        model = LlavaOnevision.from_pretrained(path)
    model.hf.train()
    return model


def stream_length(cfg: TrainConfig, step: int, rng: np.random.Generator) -> int:
    """
    Draw the stream length of phase 2 step ``step`` (the length curriculum).

    The longest length stays ``start_frames`` for the first ``hold`` of phase 2, then grows
    geometrically to ``max_frames`` until ``growth`` of it; the length is drawn
    log-uniformly from ``min_frames`` up to it, so short streams stay frequent (they teach
    fast) while long ones grow common.
    """
    grown = step - cfg.hold * cfg.steps
    progress = min(1.0, max(0.0, grown / max(1.0, (cfg.growth - cfg.hold) * cfg.steps)))
    longest = cfg.start_frames * (cfg.max_frames / cfg.start_frames) ** progress
    low, high = math.log(cfg.min_frames), math.log(max(longest, cfg.min_frames))
    return int(round(math.exp(rng.uniform(low, high))))


def _batch(cfg: TrainConfig, step: int, packer: Packer, bank: FrameBank,
           rng: np.random.Generator):
    if step < cfg.recognition_steps:
        return sample_batch(packer, bank, rng, cfg.recognition_batch, 1,
                            cfg.recognition_questions, cfg.noise, kinds=('now', 'presence'))
    num_frames = stream_length(cfg, step - cfg.recognition_steps, rng)
    batch_size = max(1, cfg.frames_per_step // num_frames)
    questions = min(cfg.questions_per_stream, max(2, num_frames // 2))
    return sample_batch(packer, bank, rng, batch_size, num_frames, questions, cfg.noise,
                        cfg.stretch_prob, cfg.max_span)


def train(cfg: TrainConfig, out: Path) -> Path:
    """Train from scratch; save the checkpoint (float16 weights) to ``out``; return ``out``."""
    rng = np.random.default_rng([TRAIN_SEED_TAG, cfg.seed])
    system_prompt = EngineConfig().system_prompt
    tokenizer = reference_tokenizer(system_prompt)
    model = _initial_model(cfg, tokenizer)
    packer = Packer(model, system_prompt)
    start = time.perf_counter()
    bank = FrameBank(model, rng, cfg.dwells_per_scene, cfg.dwell_frames)
    log.info('frame bank: %s pixel values in %.1f s', tuple(bank.pixels.shape),
             time.perf_counter() - start)
    params = list(model.hf.parameters())
    optimizer = torch.optim.AdamW([
        {'params': [p for p in params if p.ndim >= 2], 'weight_decay': cfg.weight_decay},
        {'params': [p for p in params if p.ndim < 2], 'weight_decay': 0.0},
    ], lr=cfg.lr, betas=(0.9, 0.98))
    total = cfg.recognition_steps + cfg.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, total, cfg.warmup_steps))
    start = time.perf_counter()
    tally: dict[str, list[int]] = defaultdict(list)
    losses: list[float] = []
    for step in range(total):
        batch = _batch(cfg, step, packer, bank, rng)
        logits = model.hf(input_ids=batch.input_ids, position_ids=batch.position_ids,
                          attention_mask=batch.attention_mask,
                          pixel_values_videos=batch.pixel_values_videos).logits  # [B, T, V]
        loss = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        at = batch.answer_positions
        predicted = logits.detach()[at[:, 0], at[:, 1]].argmax(-1)
        long = batch.pixel_values_videos.shape[1] >= LONG_FRAMES
        for question, ok in zip(batch.questions, (predicted == batch.answers).tolist()):
            tally[question.kind].append(ok)
            if long:
                tally[f'{question.kind}@{LONG_FRAMES}+'].append(ok)
        losses.append(float(loss.detach()))
        if (step + 1) % cfg.log_every == 0 or step + 1 == total:
            answers = ' '.join(f'{k} {100 * sum(v) / len(v):.0f}%'
                               for k, v in sorted(tally.items()))
            log.info('step %d/%d  loss %.3f  train answers %s  %.0f s', step + 1, total,
                     sum(losses) / len(losses), answers, time.perf_counter() - start)
            tally.clear()
            losses.clear()
    log.info('trained %d steps in %.0f s', total, time.perf_counter() - start)
    model.hf.eval().to(torch.float16)
    return save_checkpoint(out, model.hf, tokenizer, REFERENCE_SPEC.image_size)


def held_out_episodes(cfg: TrainConfig, num_frames: int, seed: int) -> list[Episode]:
    """Render ``cfg.eval_streams`` held-out streams of ``num_frames`` (never training streams)."""
    return [make_episode(held_out_seed(seed, num_frames, i), num_frames, cfg.eval_questions)
            for i in range(cfg.eval_streams)]


def engine_accuracy(engine: StreamingVLM, episodes: list[Episode]) -> dict[str, float]:
    """
    Measure exact-match accuracy of greedy answers, overall (``all``) and per kind.

    Every episode streams through a fresh memory of ``engine``'s policy (:meth:`new_stream`).
    """
    correct: dict[str, list[int]] = defaultdict(list)
    for episode in episodes:
        stream = engine.new_stream()
        stream.ingest(episode.frames, episode.stamps)
        stream.flush()
        for question in episode.questions:
            ok = int(stream.ask(question.text, max_new_tokens=4).text.strip() == question.answer)
            correct[question.kind].append(ok)
            correct['all'].append(ok)
    return {kind: sum(v) / len(v) for kind, v in correct.items()}


def main(argv: list[str] | None = None) -> None:
    """Train, save, reload through the product's loader and report held-out accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=None,
                        help='checkpoint directory (default: the model cache)')
    parser.add_argument('--seed', type=int, default=TrainConfig.seed)
    parser.add_argument('--steps', type=int, default=TrainConfig.steps, help='phase 2 steps')
    parser.add_argument('--eval-streams', type=int, default=TrainConfig.eval_streams)
    parser.add_argument('--evaluate', default=None, metavar='PATH',
                        help='only evaluate this checkpoint ("reference": the committed one)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    cfg = TrainConfig(seed=args.seed, steps=args.steps, eval_streams=args.eval_streams)
    path = args.evaluate
    if path is None:
        path = args.out or cache_dir('models') / f'reference-seed{cfg.seed}'
        log.info('training the reference model into %s: %s', path, asdict(cfg))
        start = time.perf_counter()
        train(cfg, path)
        log.info('train time %.0f s (%d torch threads)', time.perf_counter() - start,
                 torch.get_num_threads())
    engine = StreamingVLM.from_pretrained(path, policy='full', **MEMORY_SETTINGS)
    for num_frames in cfg.eval_lengths:
        accuracy = engine_accuracy(engine, held_out_episodes(cfg, num_frames, seed=cfg.seed))
        log.info('held-out accuracy of %s, policy full, %d streams of %d frames: %s', path,
                 cfg.eval_streams, num_frames,
                 '  '.join(f'{k} {100 * v:.1f}%' for k, v in sorted(accuracy.items())))


if __name__ == '__main__':
    main()
