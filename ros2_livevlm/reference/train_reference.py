# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Train the reference model: a tiny LLaVA-OneVision that answers streaming recall questions.

    python -m ros2_livevlm.reference.train_reference [--out DIR] [--seed 0] [--steps N]
    python -m ros2_livevlm.reference.train_reference --evaluate reference

Builds the tokenizer (BPE merges learned so every answer word is one token) and a tiny
LLaVA-OneVision of :data:`REFERENCE_SPEC` (SigLIP tower, projector, Qwen2 with GQA: the
classes of real checkpoints), trains it end to end with full attention on real-photo
streams of :mod:`.task` in the engine's prompt layout (:mod:`.data`), saves it with
``save_pretrained`` (float16 safetensors, tokenizer, processor config), loads it back
through the product's loader and reports the accuracy of the streaming engine (policy
``full``) on held-out streams of the training length. ``--evaluate PATH`` only does the
last step (``reference`` = the committed checkpoint).

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

from .data import FrameBank
from .data import IGNORE
from .data import Packer
from .data import sample_batch
from .task import Episode
from .task import make_episode
from .task import tokenizer_corpus
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
    hidden=64,
    layers=4,
    heads=4,
    kv_heads=2,
    intermediate=96,
    rope_theta=10_000.0,
)
"""
Widths of the reference model.

32-px frames in 4-px patches: 8x8 SigLIP tokens (48 wide, 2 layers), 16 per frame after
the 2x2 pooling; Qwen2 64 wide (MLP 96), 4 layers, 4 query / 2 KV heads of 16, RoPE base
10^4 (with 8 rotary frequencies per head, base 10^6 leaves too few of them in the 16-2,000
token range frame positions span). 230 k parameters, 0.46 MB in float16. Two LLM layers
learned "now" and "first" but not "Did you see X?" within the step budget.
"""


@dataclass(frozen=True)
class TrainConfig:
    """
    Training settings. Two phases share one optimizer and one learning-rate schedule.

    Attributes:
        seed: seeds the model init, the frame bank and every batch.
        recognition_steps: phase 1 steps: one-frame streams, one question each (the
            vision tower and projector learn the scenes, as LLaVA's alignment stage does).
        recognition_batch: streams per phase 1 step.
        steps: phase 2 steps: several questions per stream, streams growing from
            ``min_frames`` to ``min_frames..max_frames`` frames over the first half.
        batch_size: streams per phase 2 step.
        questions_per_stream: questions packed after each phase 2 stream.
        train_frames: the nominal training stream length, frames (held-out check length).
        min_frames: shortest phase 2 stream, frames.
        max_frames: longest phase 2 stream, frames.
        run_frames: ``(min, max)`` frames per scene run.
        lr: peak AdamW learning rate (linear warm-up, cosine decay to 10 %).
        warmup_steps: warm-up steps.
        weight_decay: AdamW weight decay of matrices.
        noise: extra pixel noise, max standard deviation in normalized units.
        stretch_prob: share of phase 2 streams trained with randomized positions
            (random gaps between frames, :meth:`.data.Packer.context_positions`), so
            ``full`` attention keeps working on streams longer than trained on.
        max_span: video positions a stretched stream may span (2,560 = 160 frames of 16
            tokens; the quality benchmark streams up to 128 frames).
        dwells_per_scene: frame bank dwells per scene.
        dwell_frames: frames per frame bank dwell (>= the longest run).
        eval_streams: held-out streams for the final check.
        eval_questions: questions per held-out stream.
    """

    seed: int = 0
    recognition_steps: int = 200
    recognition_batch: int = 64
    steps: int = 1000
    batch_size: int = 16
    questions_per_stream: int = 8
    train_frames: int = 16
    min_frames: int = 6
    max_frames: int = 24
    run_frames: tuple[int, int] = (3, 6)
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    noise: float = 0.05
    stretch_prob: float = 0.5
    max_span: int = 2560
    dwells_per_scene: int = 48
    dwell_frames: int = 6
    eval_streams: int = 40
    eval_questions: int = 8


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


def _batch(cfg: TrainConfig, step: int, packer: Packer, bank: FrameBank,
           rng: np.random.Generator):
    if step < cfg.recognition_steps:
        return sample_batch(packer, bank, rng, cfg.recognition_batch, 1, (1, 1), 1, cfg.noise)
    growth = min(1.0, 2.0 * (step - cfg.recognition_steps) / cfg.steps)
    high = cfg.min_frames + round(growth * (cfg.max_frames - cfg.min_frames))
    num_frames = int(rng.integers(cfg.min_frames, high + 1))
    return sample_batch(packer, bank, rng, cfg.batch_size, num_frames, cfg.run_frames,
                        cfg.questions_per_stream, cfg.noise, cfg.stretch_prob, cfg.max_span)


def train(cfg: TrainConfig, out: Path) -> Path:
    """Train from scratch; save the checkpoint (float16 weights) to ``out``; return ``out``."""
    rng = np.random.default_rng(cfg.seed)
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
        for question, ok in zip(batch.questions, (predicted == batch.answers).tolist()):
            tally[question.kind].append(ok)
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0 or step + 1 == total:
            answers = ' '.join(f'{k} {100 * sum(v) / len(v):.0f}%'
                               for k, v in sorted(tally.items()))
            log.info('step %d/%d  loss %.3f  train answers %s  %.0f s', step + 1, total,
                     sum(losses) / len(losses), answers, time.perf_counter() - start)
            tally.clear()
            losses.clear()
    log.info('trained %d steps in %.0f s', total, time.perf_counter() - start)
    model.hf.eval().to(torch.float16)
    return save_checkpoint(out, model.hf, tokenizer, REFERENCE_SPEC.image_size)


def held_out_episodes(cfg: TrainConfig, seed: int) -> list[Episode]:
    """Render ``cfg.eval_streams`` streams of the training length, seeded apart from training."""
    return [make_episode(seed * 100_003 + i, cfg.train_frames, cfg.run_frames,
                         cfg.eval_questions) for i in range(cfg.eval_streams)]


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
    engine = StreamingVLM.from_pretrained(path, policy='full', frames_per_clip=8)
    accuracy = engine_accuracy(engine, held_out_episodes(cfg, seed=cfg.seed + 1))
    log.info('held-out accuracy of %s, policy full, %d streams of %d frames: %s', path,
             cfg.eval_streams, cfg.train_frames,
             '  '.join(f'{k} {100 * v:.1f}%' for k, v in sorted(accuracy.items())))


if __name__ == '__main__':
    main()
