# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The reference model: a tiny LLaVA-OneVision trained by the project on real photos.

No real video-LLM weights can be downloaded on the project's machines, so the project
trains its own stand-in of the same architecture (SigLIP tower, projector, Qwen2 with GQA;
:data:`~ros2_livevlm.reference.train_reference.REFERENCE_SPEC`) on a streaming recall task
over the 24 scikit-image pictures of :mod:`ros2_livevlm.reference.scenes` (:mod:`.task`):
"Did you see the cat?", "What did you see first?", "What are you looking at now?" and
"Did you see the cat before the rocket?", on streams of 8 to 256 frames. It is trained
with full attention only, never through a memory policy, so it favours none; memory
policies are then compared by its accuracy (``python -m ros2_livevlm.bench.quality``). It
knows only those scenes and those question forms; it stands in for a real checkpoint, it
does not replace one.

The trained checkpoint is committed in :data:`CHECKPOINT_DIR` (float16 safetensors of
1.6 MB, tokenizer and processor config) and selected with ``model_path="reference"``
(:func:`ros2_livevlm.models.resolve_model_path`). :data:`TRAIN_COMMAND` retrains it from
scratch (under 20 minutes on 2 CPU cores) and reports its held-out accuracy.

What it took to train (measured, see ``train_reference``): 4 LLM layers (2 learned "now"
and "first" but not presence), LeCun-scaled initialisation (HF's 0.02 stalls at width
128), random position gaps (streams look longer than trained on), a length curriculum
(short streams first, the longest grown geometrically to 256 frames) with every step
holding about the same number of frames, and a first phase of one-frame streams that
teaches the vision tower the scenes and the LLM to tell whether a named scene is shown
("now" and a presence "yes" and "no" per frame: without the presence questions there,
presence stayed at chance with 24 scenes).

No rclpy here, and nothing heavy at import time: ``models`` imports this module for the
checkpoint location.
"""

from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent / 'livevlm-reference'
"""Directory of the committed reference checkpoint (``save_pretrained`` layout)."""

TRAIN_COMMAND = 'python -m ros2_livevlm.reference.train_reference --out ' + str(CHECKPOINT_DIR)
"""The command that regenerates :data:`CHECKPOINT_DIR`."""

MEMORY_SETTINGS = {'frames_per_clip': 8, 'budget_tokens': 448, 'observation_tokens': 32}
"""
Memory and engine settings sized for the reference model's 16 tokens per frame, where the
defaults of ``MemoryConfig``/``EngineConfig`` (LiveVLM's, for 196 tokens per frame) do not
fit it: a long-term budget of 28 frames (with the 2 short-term frames and the init
segment, a quarter of ``full``'s KV at 128 frames), VSB observing the last 2 frames, clips
of 8 frames. The node's defaults (its ``model_path`` default is the reference model), and
``evaluate``'s and ``livevlm-run``'s with ``--model-path reference``
(:func:`ros2_livevlm.models.default_settings`); the quality benchmark's budget.
"""
