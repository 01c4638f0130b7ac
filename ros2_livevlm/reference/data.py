# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Training batches for the reference model, in the exact token layout the engine uses.

One training sequence holds one stream and several questions about it, packed so the
video is encoded and prefilled once::

    [init | video: N * P frame tokens, image_newline | q1 prompt, a1, <|im_end|> | q2 ... ]

A 4-D attention mask lets every question segment see the init and video tokens and its
own tokens (causal), never another question; each segment's RoPE positions continue after
the video, so each question sees exactly what :meth:`~ros2_livevlm.engine.StreamingVLM.ask`
builds at inference (``tests/reference/test_training_layout.py`` checks ids, positions and
logits against the engine)::

    INIT_TEMPLATE + video (N * P tokens, then HF's image_newline)
    + QUESTION_PREFIX + question + QUESTION_SUFFIX -> answer word, <|im_end|>

Frames come from a bank of pre-rendered, preprocessed camera dwells per scene (rendering
at camera size and the resize to the model's frame size happen once; fresh sensor noise is
added per use), so a training step costs only the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .scenes import SCENE_NAMES
from .task import KINDS
from .task import make_runs
from .task import Question
from .task import render_run
from .task import run_frames
from .task import sample_questions
from ..models import LlavaOnevision

IGNORE = -100
"""Label of positions that carry no loss."""


class FrameBank:
    """
    Pre-rendered camera dwells per scene, as model pixel values.

    Args:
        model: the model whose :meth:`~LlavaOnevision.preprocess` makes pixel values.
        rng: random generator (camera paths, colour, noise).
        dwells_per_scene: dwells rendered per scene.
        dwell_frames: frames per dwell; a longer run joins several dwells of its scene
            (camera cuts within the scene).
        size: camera frame ``(height, width)`` in pixels, rendered before the resize.

    Attributes:
        pixels: ``[scenes, dwells, frames, 3, S, S]`` float16 pixel values.
    """

    def __init__(self, model: LlavaOnevision, rng: np.random.Generator, dwells_per_scene: int,
                 dwell_frames: int, size: tuple[int, int] = (96, 128)) -> None:
        frames = np.stack([
            np.stack([render_run(rng, scene, dwell_frames, size) for _ in range(dwells_per_scene)])
            for scene in SCENE_NAMES
        ])  # [scenes, dwells, frames, H, W, 3] uint8
        flat = torch.from_numpy(frames.reshape(-1, *frames.shape[-3:]))
        pixels = torch.cat([model.preprocess(chunk).half() for chunk in flat.split(512)])
        self.pixels = pixels.reshape(*frames.shape[:3], *pixels.shape[1:])  # [n, 3, S, S]
        self.index = {scene: i for i, scene in enumerate(SCENE_NAMES)}

    def run(self, rng: np.random.Generator, scene: str, num_frames: int) -> torch.Tensor:
        """Return ``num_frames`` frames of ``scene``: consecutive frames of random dwells."""
        _, dwells, length = self.pixels.shape[:3]
        parts, left = [], num_frames
        while left:
            take = min(left, length)
            start = int(rng.integers(0, length - take + 1))
            dwell = self.pixels[self.index[scene], int(rng.integers(dwells))]
            parts.append(dwell[start:start + take])
            left -= take
        return torch.cat(parts).float()  # [n, 3, S, S]


@dataclass
class PackedBatch:
    """
    A batch of packed streams and questions.

    Attributes:
        input_ids: ``[B, T]`` int64 (``<video>`` placeholders where frame tokens go).
        position_ids: ``[B, T]`` int64 RoPE positions.
        attention_mask: ``[B, 1, T, T]`` bool, True = may attend.
        labels: ``[B, T]`` int64, the next token to predict at each position, or
            :data:`IGNORE`.
        pixel_values_videos: ``[B, N, 3, S, S]`` float32.
        answer_positions: ``[Q, 2]`` int64 ``(batch, position)`` where each answer word is
            predicted (``Q`` questions in all).
        answers: ``[Q]`` int64 answer token ids.
        questions: the ``Q`` questions, in the order of ``answers``.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixel_values_videos: torch.Tensor
    answer_positions: torch.Tensor
    answers: torch.Tensor
    questions: list[Question]


class Packer:
    """
    Build :class:`PackedBatch` es for one model and tokenizer.

    Args:
        model: the model being trained (tokenizer, tokens per frame, placeholder id).
        system_prompt: the init segment's system prompt (the engine's default).
    """

    def __init__(self, model: LlavaOnevision, system_prompt: str) -> None:
        self.model = model
        self.init_ids = model.init_ids(system_prompt)
        self.end_id = model.tokenizer.convert_tokens_to_ids('<|im_end|>')
        self.pad_id = model.tokenizer.pad_token_id
        self.video_id = model.config.video_token_index
        self._answer_ids: dict[str, int] = {}

    def answer_id(self, word: str) -> int:
        """
        Return the single token id of answer ``word``.

        Raises:
            ValueError: ``word`` is more than one token.
        """
        if word not in self._answer_ids:
            ids = self.model.tokenize(word)
            if len(ids) != 1:
                raise ValueError(f'answer {word!r} is {len(ids)} tokens; '
                                 'the tokenizer must make every answer word one token')
            self._answer_ids[word] = ids[0]
        return self._answer_ids[word]

    def context_positions(self, num_frames: int,
                          frame_gaps: list[int] | None = None) -> list[int]:
        """
        Return the RoPE positions of ``[init | video | image_newline]``.

        Contiguous, as the engine numbers them, unless ``frame_gaps`` (``[N]`` ints >= 0)
        skips that many positions before each frame: randomized positions (Ruoss et al.,
        "Randomized Positional Encodings Boost Length Generalization of Transformers",
        ACL 2023) that show the model the distances of streams longer than it is trained
        on. Frames stay contiguous inside, and nothing is skipped after the last frame.
        """
        per_frame = self.model.tokens_per_frame
        gaps = np.cumsum(frame_gaps) if frame_gaps is not None else np.zeros(num_frames, int)
        frame_start = len(self.init_ids) + per_frame * np.arange(num_frames) + gaps
        video = (frame_start[:, None] + np.arange(per_frame)[None, :]).ravel().tolist()
        return list(range(len(self.init_ids))) + video + [video[-1] + 1]

    def pack(self, videos: list[torch.Tensor], question_sets: list[list[Question]],
             frame_gaps: list[list[int] | None] | None = None) -> PackedBatch:
        """
        Pack streams ``[N, 3, S, S]`` (the same N for all) with their questions.

        ``frame_gaps[b]`` optionally stretches stream ``b``'s positions
        (:meth:`context_positions`); by default every stream is numbered as the engine does.

        Raises:
            ValueError: an answer word is not a single token (:meth:`answer_id`).
        """
        num_frames = videos[0].shape[0]
        context = self.init_ids + [self.video_id] * (num_frames * self.model.tokens_per_frame + 1)
        sequences, positions, segments, targets = [], [], [], []
        for b, questions in enumerate(question_sets):
            ids, seg, tgt = list(context), [0] * len(context), []
            pos = self.context_positions(num_frames, frame_gaps[b] if frame_gaps else None)
            after_context = pos[-1] + 1
            for number, question in enumerate(questions, start=1):
                answer = self.answer_id(question.answer)
                prompt = self.model.question_ids(question.text)[0]
                body = prompt + [answer, self.end_id]
                start = len(ids)
                tgt += [(start + len(prompt) - 1, answer), (start + len(prompt), self.end_id)]
                ids += body
                pos += range(after_context, after_context + len(body))
                seg += [number] * len(body)
            sequences.append(ids)
            positions.append(pos)
            segments.append(seg)
            targets.append(tgt)
        return self._collate(videos, sequences, positions, segments, targets, question_sets)

    def _collate(self, videos, sequences, positions, segments, targets,
                 question_sets) -> PackedBatch:
        length = max(map(len, sequences))
        batch = len(sequences)
        input_ids = torch.full((batch, length), self.pad_id, dtype=torch.int64)
        position_ids = torch.zeros((batch, length), dtype=torch.int64)
        segment = torch.full((batch, length), -1, dtype=torch.int64)  # -1 = padding
        labels = torch.full((batch, length), IGNORE, dtype=torch.int64)
        answer_positions, answers = [], []
        for b, (ids, pos, seg, tgt) in enumerate(zip(sequences, positions, segments, targets)):
            input_ids[b, :len(ids)] = torch.tensor(ids)
            position_ids[b, :len(pos)] = torch.tensor(pos)
            segment[b, :len(seg)] = torch.tensor(seg)
            for position, token in tgt:
                labels[b, position] = token
                if token != self.end_id:
                    answer_positions.append((b, position))
                    answers.append(token)
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        same = segment[:, :, None] == segment[:, None, :]
        sees_context = (segment[:, :, None] >= 0) & (segment[:, None, :] == 0)
        mask = causal & (same | sees_context)  # padding only sees padding: no empty rows
        return PackedBatch(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=mask[:, None],
            labels=labels,
            pixel_values_videos=torch.stack(videos),
            answer_positions=torch.tensor(answer_positions, dtype=torch.int64),
            answers=torch.tensor(answers, dtype=torch.int64),
            questions=[q for questions in question_sets for q in questions],
        )


def sample_batch(packer: Packer, bank: FrameBank, rng: np.random.Generator, batch_size: int,
                 num_frames: int, num_questions: int, noise: float, stretch_prob: float = 0.0,
                 max_span: int = 0, kinds: Sequence[str] = KINDS) -> PackedBatch:
    """
    Draw ``batch_size`` streams of ``num_frames`` frames from ``bank`` and pack their questions.

    Scene runs last :func:`~ros2_livevlm.reference.task.run_frames` frames, as in the
    held-out streams of the same length.

    Args:
        packer: builds the batch.
        bank: the frames.
        rng: random generator (runs, dwells, noise, questions, gaps).
        batch_size: streams.
        num_frames: frames per stream.
        num_questions: questions per stream.
        noise: maximum standard deviation of extra Gaussian noise on pixel values
            (normalized units; drawn per stream in ``[0, noise]``).
        stretch_prob: share of streams whose video positions are stretched by random
            gaps between frames (:meth:`Packer.context_positions`).
        max_span: a stretched stream's video spans a length drawn uniformly up to this
            many positions (at least its own token count).
        kinds: question kinds to draw (:func:`~ros2_livevlm.reference.task.sample_questions`).
    """
    videos, question_sets, frame_gaps = [], [], []
    tokens = num_frames * packer.model.tokens_per_frame
    for _ in range(batch_size):
        gaps = None
        if num_frames > 1 and rng.random() < stretch_prob and max_span > tokens:
            extra = int(rng.integers(0, max_span - tokens + 1))
            cuts = np.sort(rng.integers(0, extra + 1, size=num_frames - 1))
            gaps = [0, *np.diff(cuts, prepend=0).tolist()]  # none before the first frame
        frame_gaps.append(gaps)
        runs = make_runs(rng, num_frames, run_frames(num_frames))
        video = torch.cat([bank.run(rng, run.scene, run.num_frames) for run in runs])
        sigma = float(rng.uniform(0.0, noise))
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        videos.append(video + sigma * torch.randn(video.shape, generator=generator))
        question_sets.append(sample_questions(rng, runs, num_questions, kinds))
    return packer.pack(videos, question_sets, frame_gaps)
