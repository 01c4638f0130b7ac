# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""The training batches put every question in exactly the layout the engine answers from."""

from __future__ import annotations

import numpy as np
from ros2_livevlm.config import EngineConfig
from ros2_livevlm.config import MemoryConfig
from ros2_livevlm.engine import StreamingVLM
from ros2_livevlm.models import LlavaOnevision
from ros2_livevlm.reference.data import IGNORE
from ros2_livevlm.reference.data import Packer
from ros2_livevlm.reference.task import make_runs
from ros2_livevlm.reference.task import render_run
from ros2_livevlm.reference.task import sample_questions
import torch


def test_packed_questions_equal_the_engine(untrained_reference: LlavaOnevision) -> None:
    model = untrained_reference
    rng = np.random.default_rng(3)
    engine = StreamingVLM(model, MemoryConfig(policy='full'), EngineConfig(frames_per_clip=3))
    packer = Packer(model, engine.engine_config.system_prompt)
    streams, question_sets = [], []
    for _ in range(2):
        runs = make_runs(rng, 7, (2, 4))
        frames = np.concatenate([render_run(rng, r.scene, r.num_frames, (48, 64)) for r in runs])
        streams.append(frames)
        question_sets.append(sample_questions(rng, runs, 4))
    videos = [model.preprocess(torch.from_numpy(frames)) for frames in streams]
    batch = packer.pack(videos, question_sets)
    with torch.no_grad():
        logits = model.hf(input_ids=batch.input_ids, position_ids=batch.position_ids,
                          attention_mask=batch.attention_mask,
                          pixel_values_videos=batch.pixel_values_videos).logits
    answer = 0
    for b, (frames, questions) in enumerate(zip(streams, question_sets)):
        stream = engine.new_stream()
        stream.ingest(frames, np.arange(len(frames), dtype=float))
        stream.flush()
        for question in questions:
            # the packed segment's token ids and RoPE positions are the engine's prompt
            ids, _ = stream.offline_inputs(frames, question.text)
            ids = ids[0].tolist()
            _, position = batch.answer_positions[answer].tolist()
            context = len(packer.init_ids) + len(frames) * model.tokens_per_frame + 1
            prompt = slice(position + 1 - (len(ids) - context), position + 1)
            packed = batch.input_ids[b, :context].tolist() + batch.input_ids[b, prompt].tolist()
            assert packed == ids
            assert batch.position_ids[b, prompt].tolist() == list(range(context, len(ids)))
            # the packed logits of the answer are the engine's streaming logits
            expected = stream.next_token_logits(question.text)
            assert (logits[b, position] - expected).abs().max().item() <= 1e-4
            # the loss targets: the answer word, then <|im_end|>
            assert batch.labels[b, position].item() == packer.answer_id(question.answer)
            assert batch.labels[b, position + 1].item() == model.tokenizer.eos_token_id
            answer += 1
    assert answer == batch.answers.numel()
    assert int((batch.labels != IGNORE).sum()) == 2 * answer
