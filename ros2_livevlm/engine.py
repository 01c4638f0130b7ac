# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
r"""
StreamingVLM: frames in as they arrive, questions answered from a bounded KV memory.

One engine = one loaded model + one memory (one camera); :meth:`StreamingVLM.new_stream`
adds another memory on the same model. No rclpy here: the ROS node and the evaluation
tools drive this API.

    engine = StreamingVLM.from_pretrained("tiny", policy="livevlm", budget_tokens=512)
    engine.ingest(frames, stamps)            # uint8 [N, H, W, 3], seconds
    answer = engine.ask("What is on the table?")
    answer.text, answer.evidence, answer.ttft_s

Data flow (DESIGN.md): frames -> preprocess -> buffered until ``frames_per_clip`` ->
vision encoder (SigLIP + projector + 2x2 pooling) -> clip prefill through the LLM against
``[init | long-term | short-term]`` -> FIFO + policy (VSB) keeps the budget. A question
prefills ``[newline | "\n{question}<|im_end|><|im_start|>assistant\n"]`` over the
per-layer retrieved context (PaR) and decodes greedily. The prompt layout is LLaVA-OneVision's
chat template as used by ReKV/LiveVLM (spec A.3).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
import math
from pathlib import Path
import time
from typing import Any

import numpy as np
import torch

from .backends import make_llm
from .backends import make_vision_encoder
from .backends import memory_kernels
from .backends import VisionEncoder
from .checkpoints import resolve_model_path
from .config import EngineConfig
from .config import MemoryConfig
from .config import split_settings
from .memory import AnswerContext
from .memory import ClipPrefill
from .memory import make_policy
from .memory import Rope
from .memory import VideoMemory
from .models import check_device
from .models import DecoderParts
from .models import LlavaOnevision
from .models import resolve_dtype
from .persistence import DEFAULT_MEMORY_NAME
from .persistence import load_memories
from .persistence import MemoryFileInfo
from .persistence import save_memories
from .thumbnails import Thumbnail
from .thumbnails import ThumbnailStore
MAX_EVIDENCE_IMAGES = 8
"""Most thumbnails an answer returns as its evidence (:attr:`Answer.evidence_images`)."""

OnToken = Callable[[int, str], 'bool | None']
"""``on_token(token_id, text_delta)``, called per generated token; return False to stop."""


@dataclass
class Answer:
    """
    One answer from memory.

    Attributes:
        text: the decoded answer.
        token_ids: generated token ids (EOS excluded).
        evidence: ``(t_start, t_end)`` camera time spans in seconds of the frames the
            answer drew on most, most relevant first.
        ttft_s: question start -> first token (retrieval + prompt prefill + first logits), s.
        total_s: question start -> last token, s.
        tokens_attended: context length attended (memory + prompt), averaged over layers.
        frames_in_memory: frames with at least one token in some layer of the memory.
        stop_reason: ``eos``, ``length`` or ``cancelled`` (``on_token`` returned False).
        evidence_images: thumbnails of the frames in the evidence spans, span by span, at
            most :data:`MAX_EVIDENCE_IMAGES` (none when ``thumbnail_size`` is 0).
    """

    text: str
    token_ids: list[int]
    evidence: list[tuple[float, float]]
    ttft_s: float
    total_s: float
    tokens_attended: int
    frames_in_memory: int
    stop_reason: str
    evidence_images: list[Thumbnail] = field(default_factory=list)


@dataclass
class FirstToken:
    """
    The first answer token's distribution for a question, with what it drew on.

    Attributes:
        logits: ``[V]`` float32 logits of the first answer token.
        evidence: as :attr:`Answer.evidence`, ``(t_start, t_end)`` spans in seconds.
        newest_stamp: stamp of the newest frame in the memory, s (None before the first
            clip); buffered frames of an unfinished clip are not seen.
        tokens_attended: context length attended (memory + prompt), averaged over layers.
        total_s: question start -> logits, s.
    """

    logits: torch.Tensor
    evidence: list[tuple[float, float]]
    newest_stamp: float | None
    tokens_attended: int
    total_s: float


@dataclass
class MemoryStats:
    """
    Occupancy and latency of one memory. Token counts are per layer.

    Attributes:
        frames_ingested: frames accepted since the last reset (prefilled or pending).
        frames_in_memory: frames with at least one token in some layer of the memory.
        frames_pending: frames buffered for the next clip.
        clips_prefilled: clips prefilled since the last reset.
        tokens_init / tokens_long_term / tokens_short_term: tokens per segment.
        budget_tokens: long-term budget (None: unlimited, policy ``full``).
        kv_bytes: bytes of K and V resident, all layers.
        newest_stamp: stamp of the newest accepted frame, s (None before the first).
        last_encode_s: vision encoder time of the last clip, s.
        last_prefill_s: LLM prefill + memory update time of the last clip, s.
        vsb_topped_up_tokens: tokens VSB kept beyond bucket capacity to meet the budget.
        thumbnail_bytes: JPEG bytes of the frame thumbnails held (:mod:`.thumbnails`).
    """

    frames_ingested: int
    frames_in_memory: int
    frames_pending: int
    clips_prefilled: int
    tokens_init: int
    tokens_long_term: int
    tokens_short_term: int
    budget_tokens: int | None
    kv_bytes: int
    newest_stamp: float | None
    last_encode_s: float
    last_prefill_s: float
    vsb_topped_up_tokens: int
    thumbnail_bytes: int = 0


class StreamingVLM:
    """
    A streaming video-LLM over one camera's bounded, recallable KV memory.

    Not thread-safe: one thread owns an engine (and the engines sharing its model).

    Args:
        model: a loaded backbone (shared by :meth:`new_stream` engines).
        memory_config: how the memory is kept (policy, budget, VSB, PaR).
        engine_config: clip size, answer length, system prompt, device, backends.
        vision_encoder: an encoder to share (as :meth:`new_stream` does); default: built
            for ``engine_config.vision_backend``.
        llm: the LLM's compute to share (as :meth:`new_stream` does); default: built for
            ``engine_config.llm_backend``.
    """

    def __init__(
        self,
        model: LlavaOnevision,
        memory_config: MemoryConfig,
        engine_config: EngineConfig,
        *,
        vision_encoder: VisionEncoder | None = None,
        llm: DecoderParts | None = None,
    ) -> None:
        self.model = model
        self.memory_config = memory_config
        self.engine_config = engine_config
        self.rope = Rope(model.inv_freq.to(model.device), model.attention_scaling)
        self.policy = make_policy(memory_config, model.tokens_per_frame)
        self.encode = vision_encoder or make_vision_encoder(model, engine_config)
        self.llm = llm or make_llm(model, engine_config)
        self.kernels = memory_kernels(engine_config, self.llm)
        self.memory = self._empty_memory()
        self.thumbnails = ThumbnailStore(engine_config.thumbnail_size)
        self._prefill_init()
        self._reset_stream()

    @classmethod
    def from_pretrained(
        cls, model_path: str | Path, *, device: str = 'cpu', dtype: str = 'auto', **settings
    ) -> StreamingVLM:
        """
        Load a checkpoint and start an empty memory.

        Args:
            model_path: ``"reference"``, ``"tiny"`` or a local LLaVA-OneVision directory
                (:func:`~ros2_livevlm.models.resolve_model_path`).
            device: torch device.
            dtype: ``auto``, ``float32``, ``float16`` or ``bfloat16``.
            **settings: any :class:`MemoryConfig` / :class:`EngineConfig` field.

        Raises:
            ValueError: an unknown setting or a bad value (names the field), a device this
                torch cannot use, or a model directory that is missing or incomplete
                (names what is missing).
            RuntimeError: the selected vision backend or kernels cannot run here
                (the message says what to set instead).
        """
        memory_config, engine_config = split_settings(
            {**settings, 'device': device, 'dtype': dtype}
        )
        check_device(device)
        model = LlavaOnevision.from_pretrained(
            resolve_model_path(model_path), device=device, dtype=resolve_dtype(dtype, device)
        )
        return cls(model, memory_config, engine_config)

    def new_stream(self, **memory_settings) -> StreamingVLM:
        """
        Another engine with its own empty memory on this engine's model (e.g. a second camera).

        ``memory_settings`` override fields of this engine's :class:`MemoryConfig`.
        """
        return StreamingVLM(
            self.model,
            replace(self.memory_config, **memory_settings),
            self.engine_config,
            vision_encoder=self.encode,
            llm=self.llm,
        )

    # ---- state ----------------------------------------------------------------------

    def _empty_memory(self) -> VideoMemory:
        model = self.model
        return VideoMemory(
            model.num_layers,
            model.num_kv_heads,
            model.head_dim,
            self.memory_config.short_term_frames * model.tokens_per_frame,
            model.dtype,
            model.device,
        )

    def _prefill_init(self) -> None:
        """Prefill the system prompt: the init segment, kept forever (spec A.4 step 0)."""
        ids = torch.tensor(self.model.init_ids(self.engine_config.system_prompt))
        writer = ClipPrefill(
            self.memory, self.rope, self.policy, self.memory_config, ids.numel(), self.kernels
        )
        hidden = self.model.embed_tokens(ids)
        for layer in range(self.model.num_layers):
            hidden = self.llm.layer_forward(layer, hidden, writer.attend)
        writer.commit_init()

    def _reset_stream(self) -> None:
        self._pending_pixels: list[torch.Tensor] = []  # [3, S, S] per frame
        self._pending_stamps: list[float] = []
        self._pending_frames: list[int] = []
        self._frames_ingested = 0
        self._clips_prefilled = 0
        self._newest_stamp: float | None = None
        self._last_encode_s = 0.0
        self._last_prefill_s = 0.0
        self._ingesting = False

    def reset(self) -> None:
        """Forget every frame (the init segment and the model stay)."""
        self.memory.clear()
        self.thumbnails.clear()
        self._reset_stream()

    def stats(self) -> MemoryStats:
        """Return the current occupancy, counters and last latencies."""
        memory = self.memory
        return MemoryStats(
            frames_ingested=self._frames_ingested,
            frames_in_memory=memory.frames_in_memory(),
            frames_pending=len(self._pending_pixels),
            clips_prefilled=self._clips_prefilled,
            tokens_init=memory.num_init,
            tokens_long_term=memory.num_long_term,
            tokens_short_term=memory.num_short_term,
            budget_tokens=self.policy.budget_tokens,
            kv_bytes=memory.kv_bytes,
            newest_stamp=self._newest_stamp,
            last_encode_s=self._last_encode_s,
            last_prefill_s=self._last_prefill_s,
            vsb_topped_up_tokens=int(memory.topped_up),
            thumbnail_bytes=self.thumbnails.num_bytes,
        )

    def retune(self, **settings: Any) -> None:
        """
        Change settings that steer answers, not the memory's shape, while streaming.

        Allowed: the :class:`MemoryConfig` and :class:`EngineConfig` fields whose metadata
        says ``runtime`` (``retrieval_ratio``, ``max_new_tokens``, ``thumbnail_size``,
        ``max_thumbnails``). They apply from the next answer or frame; the configs are
        replaced, never changed in place, so an answer under way keeps its settings.

        Raises:
            ValueError: a field that is not runtime, or a value its config refuses.
        """
        runtime = {f.name for c in (MemoryConfig, EngineConfig) for f in fields(c)
                   if f.metadata.get('runtime')}
        fixed = sorted(set(settings) - runtime)
        if fixed:
            raise ValueError(f'{", ".join(fixed)} cannot change while streaming (runtime '
                             f'settings: {", ".join(sorted(runtime))})')
        memory_names = {f.name for f in fields(MemoryConfig)}
        memory_config = replace(self.memory_config, **{
            k: v for k, v in settings.items() if k in memory_names})
        engine_config = replace(self.engine_config, **{
            k: v for k, v in settings.items() if k not in memory_names})
        self.memory_config, self.engine_config = memory_config, engine_config
        self.thumbnails.size = engine_config.thumbnail_size

    # ---- persistence ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """
        Everything this engine's stream depends on, by the memory's state protocol.

        ``memory`` (:meth:`VideoMemory.state`), ``policy`` (:meth:`MemoryPolicy.state`) and
        ``stream``: ``frames_ingested``, ``clips_prefilled``, ``newest_stamp`` (s or None),
        and the frames buffered for the next clip, kept rather than flushed so that a
        restored engine cuts the same clips as one that never stopped:
        ``pending_pixels`` ``[F, 3, S, S]`` in the model dtype (None when F = 0),
        ``pending_frames`` (frame indices) and ``pending_stamps`` (s); ``thumbnails``
        (:meth:`ThumbnailStore.state`, JPEG bytes as uint8). References, not copies.
        Latencies are measurements of this process and are not part of it.

        Raises:
            RuntimeError: an :meth:`ingest_iter` is suspended (a clip is half prefilled).
        """
        self._check_idle('take its state')
        pending = torch.stack(self._pending_pixels) if self._pending_pixels else None
        return {
            'memory': self.memory.state(),
            'policy': self.policy.state(),
            'stream': {
                'frames_ingested': self._frames_ingested,
                'clips_prefilled': self._clips_prefilled,
                'newest_stamp': self._newest_stamp,
                'pending_pixels': pending,
                'pending_frames': list(self._pending_frames),
                'pending_stamps': list(self._pending_stamps),
            },
            'thumbnails': self.thumbnails.state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """
        Continue from ``state`` (:meth:`state` of an engine with the same model and settings).

        All or nothing: a new memory and policy are filled and checked first and replace
        the current ones only when everything fits. Stamps continue from the restored
        ``newest_stamp``: later frames must not be older (:meth:`ingest_iter`).

        Raises:
            ValueError: a missing or mistyped entry, or tensors whose shapes do not fit
                this model and memory configuration (the message names the entry).
            RuntimeError: an :meth:`ingest_iter` is suspended.
        """
        self._check_idle('load a memory')
        memory = self._empty_memory()
        memory.load_state(state.get('memory') or {})
        policy = type(self.policy)(self.memory_config, self.model.tokens_per_frame)
        policy.load_state(state.get('policy') or {})
        thumbnails = ThumbnailStore(self.engine_config.thumbnail_size)
        thumbnails.load_state(state.get('thumbnails') or {})
        stream = _checked_stream(
            state.get('stream') or {},
            (self.engine_config.frames_per_clip, 3, *self.model.frame_size),
            self.model.dtype,
        )
        self.memory, self.policy, self.thumbnails = memory, policy, thumbnails
        self._reset_stream()
        pixels = stream['pending_pixels']
        self._pending_pixels = [] if pixels is None else list(pixels.to(self.model.device))
        self._pending_frames = stream['pending_frames']
        self._pending_stamps = stream['pending_stamps']
        self._frames_ingested = stream['frames_ingested']
        self._clips_prefilled = stream['clips_prefilled']
        self._newest_stamp = stream['newest_stamp']

    def save(self, path: str | Path, *, name: str = DEFAULT_MEMORY_NAME) -> MemoryFileInfo:
        """
        Write this engine's memory to a memory file, atomically (:mod:`.persistence`).

        Args:
            path: the file (conventionally ``*.safetensors``); replaced when it exists.
            name: the memory's name in the file (a camera name).

        Raises:
            RuntimeError: an :meth:`ingest_iter` is suspended.
            ValueError: the model has no checkpoint directory to identify it by.
            OSError: the file could not be written (the previous file is intact).
        """
        return save_memories({name: self}, path)

    def load(self, path: str | Path, *, name: str = DEFAULT_MEMORY_NAME) -> MemoryFileInfo:
        """
        Replace this engine's memory with memory ``name`` of a memory file.

        Raises:
            MemoryFileError: a missing, truncated, corrupt or newer-format file, a memory
                of another model or with an incompatible configuration, or no memory
                ``name`` in it; the message says which, and the engine keeps its memory.
            RuntimeError: an :meth:`ingest_iter` is suspended.
        """
        return load_memories(path, {name: self})

    def _check_idle(self, what: str) -> None:
        if self._ingesting:
            raise RuntimeError(
                f'cannot {what} while an ingest_iter() of this engine is suspended; '
                'exhaust it first'
            )

    # ---- ingestion ------------------------------------------------------------------

    @staticmethod
    def _frames_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(frames, np.ndarray):
            frames = torch.from_numpy(
                np.require(frames, requirements=('C', 'W'))
            )  # copies only if it must
        if (
            not isinstance(frames, torch.Tensor)
            or frames.dtype != torch.uint8
            or frames.ndim != 4
            or frames.shape[-1] != 3
        ):
            shape = tuple(getattr(frames, 'shape', ()))
            got = f'{type(frames).__name__} {getattr(frames, "dtype", "?")} {shape}'
            raise ValueError(f'frames must be uint8 RGB [N, H, W, 3] (numpy or torch), got {got}')
        if frames.shape[1] == 0 or frames.shape[2] == 0:
            raise ValueError(f'frames must not be empty, got shape {tuple(frames.shape)}')
        return frames

    def _check_stamps(self, stamps: Sequence[float], num_frames: int) -> list[float]:
        stamps = [float(s) for s in stamps]
        if len(stamps) != num_frames:
            raise ValueError(
                f'got {num_frames} frames but {len(stamps)} stamps; one stamp (s) per frame'
            )
        previous = self._newest_stamp
        for stamp in stamps:
            if not math.isfinite(stamp):
                raise ValueError(f'stamps must be finite seconds, got {stamp}')
            if previous is not None and stamp < previous:
                raise ValueError(
                    f'stamps must not go backwards: {stamp:.6f} s after {previous:.6f} s '
                    '(reset() the memory when the stream restarts)'
                )
            previous = stamp
        return stamps

    def ingest_iter(
        self, frames: np.ndarray | torch.Tensor, stamps: Sequence[float]
    ) -> Iterator[None]:
        """
        Accept frames; prefill every clip they complete, yielding between steps.

        Yields after the vision encoder and after each LLM layer of each clip prefill, so
        a caller can answer questions in between (:meth:`ask` reads only the committed
        memory; a clip is committed after its last layer). Exhaust the iterator before
        the next ingest, flush or reset.

        Args:
            frames: uint8 RGB ``[N, H, W, 3]``, numpy or torch, any H and W.
            stamps: ``N`` camera stamps in seconds, non-decreasing, also across calls.

        Raises:
            ValueError: wrong dtype/shape, stamp count, non-finite or decreasing stamps.
            RuntimeError: another ingestion of this engine is still suspended.
        """
        frames = self._frames_tensor(frames)
        stamps = self._check_stamps(stamps, frames.shape[0])
        if self._ingesting:
            raise RuntimeError(
                'an ingest_iter() of this engine is still suspended; exhaust it first'
            )
        self._ingesting = True
        try:
            pixels = self.model.preprocess(frames)  # [N, 3, S, S]
            for frame, pixel, stamp in zip(frames, pixels, stamps):
                self.thumbnails.add(self._frames_ingested, stamp, frame)
                self._pending_pixels.append(pixel)
                self._pending_stamps.append(stamp)
                self._pending_frames.append(self._frames_ingested)
                self._frames_ingested += 1
                self._newest_stamp = stamp
                if len(self._pending_pixels) == self.engine_config.frames_per_clip:
                    yield from self._prefill_clip()
        finally:
            self._ingesting = False

    def ingest(self, frames: np.ndarray | torch.Tensor, stamps: Sequence[float]) -> int:
        """:meth:`ingest_iter` run to completion; returns the clips prefilled by this call."""
        before = self._clips_prefilled
        for _ in self.ingest_iter(frames, stamps):
            pass
        return self._clips_prefilled - before

    def flush_iter(self) -> Iterator[None]:
        """
        Prefill the buffered frames as a (partial) clip, yielding like :meth:`ingest_iter`.

        Raises:
            RuntimeError: another ingestion of this engine is still suspended.
        """
        if self._ingesting:
            raise RuntimeError(
                'an ingest_iter() of this engine is still suspended; exhaust it first'
            )
        if not self._pending_pixels:
            return
        self._ingesting = True
        try:
            yield from self._prefill_clip()
        finally:
            self._ingesting = False

    def flush(self) -> int:
        """:meth:`flush_iter` run to completion; returns 1 if frames were buffered, else 0."""
        before = self._clips_prefilled
        for _ in self.flush_iter():
            pass
        return self._clips_prefilled - before

    def _prefill_clip(self) -> Iterator[None]:
        """Encode the buffered frames and prefill them as one clip (spec A.4 steps 1-5)."""
        pixels = torch.stack(self._pending_pixels)
        frame_ids = torch.tensor(self._pending_frames, dtype=torch.int64)
        stamps = torch.tensor(self._pending_stamps, dtype=torch.float64)
        self._pending_pixels, self._pending_stamps, self._pending_frames = [], [], []
        start = time.perf_counter()
        tokens = self.encode(pixels)  # [F, P, D]
        self._last_encode_s = time.perf_counter() - start
        yield
        start = time.perf_counter()
        num_frames, per_frame, _ = tokens.shape
        writer = ClipPrefill(
            self.memory,
            self.rope,
            self.policy,
            self.memory_config,
            num_frames * per_frame,
            self.kernels,
        )
        hidden = tokens.reshape(num_frames * per_frame, -1)  # [T, D]
        for layer in range(self.model.num_layers):
            hidden = self.llm.layer_forward(layer, hidden, writer.attend)
            yield
        writer.commit(frame_ids.repeat_interleave(per_frame), stamps.repeat_interleave(per_frame))
        offload = self._offload_device()
        if offload is not None:
            self.memory.offload(self.policy.stream_window, offload)
        self.thumbnails.keep(self.memory.frame_tokens(), self.engine_config.max_thumbnails,
                             self._pending_frames)
        self._clips_prefilled += 1
        self._last_prefill_s = time.perf_counter() - start

    def _offload_device(self) -> torch.device | None:
        """
        Return where K/V beyond the stream window go (None: they stay).

        Host memory for ``rekv`` on a GPU (ReKV's offload).
        """
        if self.policy.stream_window is not None and self.model.device.type == 'cuda':
            return torch.device('cpu')
        return None

    # ---- answering ------------------------------------------------------------------

    def _check_question(
        self, question: str, max_new_tokens: int | None, time_window: tuple[float, float] | None
    ) -> int:
        if not isinstance(question, str) or not question.strip():
            raise ValueError('question must be a non-empty string')
        limit = self.engine_config.max_new_tokens if max_new_tokens is None else max_new_tokens
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f'max_new_tokens must be a positive integer, got {max_new_tokens!r}')
        if time_window is not None:
            t0, t1 = (float(t) for t in time_window)
            if not (math.isfinite(t0) and math.isfinite(t1) and t0 <= t1):
                raise ValueError(
                    'time_window must be (t0, t1) finite seconds with t0 <= t1, '
                    f'got {time_window!r}'
                )
        return limit

    def _prefill_question(
        self, question: str, max_new_tokens: int, time_window: tuple[float, float] | None
    ) -> tuple[AnswerContext, torch.Tensor]:
        """Retrieve per layer, prefill the answer prompt; return the context and logits ``[V]``."""
        ids, body = self.model.question_ids(question)
        embeds = self.model.embed_tokens(torch.tensor(ids, dtype=torch.int64))
        hidden = torch.cat((self.model.image_newline[None], embeds))  # [1 + T_p, D]
        context = AnswerContext(
            self.memory,
            self.rope,
            self.policy,
            self.memory_config,
            question=slice(1 + body.start, 1 + body.stop),  # after the newline embedding
            num_prompt_tokens=hidden.shape[0],
            max_new_tokens=max_new_tokens,
            time_window=time_window,
            kernels=self.kernels,
        )
        for layer in range(self.model.num_layers):
            hidden = self.llm.layer_forward(layer, hidden, context.attend)
        return context, self.llm.logits(hidden[-1:])[0]

    def offline_inputs(
        self, frames: np.ndarray | torch.Tensor, question: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Build the equivalent offline prompt for HF's forward/``generate`` over all ``frames``.

        Same token layout the engine streams: init, one ``<video>`` placeholder per frame
        token plus one for the newline, then the question prompt. For the exactness test
        and the offline re-prefill baseline.

        Returns:
            ``input_ids [1, T]`` int64 and ``pixel_values_videos [1, N, 3, S, S]``.
        """
        frames = self._frames_tensor(frames)
        model = self.model
        init = model.init_ids(self.engine_config.system_prompt)
        video = [model.config.video_token_index] * (frames.shape[0] * model.tokens_per_frame + 1)
        ids = torch.tensor([init + video + model.question_ids(question)[0]], device=model.device)
        return ids, model.preprocess(frames)[None]

    def next_token_logits(
        self, question: str, time_window: tuple[float, float] | None = None
    ) -> torch.Tensor:
        """
        Return the first answer token's logits ``[V]`` (float32), e.g. to score options.

        Raises:
            ValueError: as :meth:`ask`.
        """
        return self.first_token(question, time_window).logits

    def first_token(
        self, question: str, time_window: tuple[float, float] | None = None
    ) -> FirstToken:
        """
        Score the first answer token of ``question`` (one prompt prefill, no decoding).

        What a yes/no watch needs (:mod:`ros2_livevlm.watch`): the logits, the evidence
        spans and the newest frame the memory held. The memory is not changed.

        Args:
            question: non-empty text.
            time_window: ``(t0, t1)`` camera seconds, as in :meth:`ask`.

        Raises:
            ValueError: as :meth:`ask`.
        """
        self._check_question(question, 1, time_window)
        start = time.perf_counter()
        context, logits = self._prefill_question(question, 1, time_window)
        return FirstToken(
            logits=logits,
            evidence=context.evidence(),
            newest_stamp=self.memory.newest_stamp,
            tokens_attended=context.tokens_attended,
            total_s=time.perf_counter() - start,
        )

    def ask(
        self,
        question: str,
        *,
        max_new_tokens: int | None = None,
        time_window: tuple[float, float] | None = None,
        on_token: OnToken | None = None,
    ) -> Answer:
        """
        Answer ``question`` from memory by greedy decoding; the memory is not changed.

        Buffered frames of an unfinished clip are not seen (call :meth:`flush` first to
        include them).

        Args:
            question: non-empty text.
            max_new_tokens: answer length limit (default: ``EngineConfig.max_new_tokens``).
            time_window: ``(t0, t1)`` camera seconds; long-term retrieval is restricted to
                pages whose stamps overlap it.
            on_token: called as ``on_token(token_id, text_delta)`` per generated token;
                returning False stops decoding (``stop_reason="cancelled"``).

        Raises:
            ValueError: empty question, bad ``max_new_tokens`` or ``time_window``.
        """
        limit = self._check_question(question, max_new_tokens, time_window)
        start = time.perf_counter()
        context, logits = self._prefill_question(question, limit, time_window)
        tokenizer = self.model.tokenizer
        token_ids: list[int] = []
        text = ''
        ttft = None
        stop_reason = 'length'
        while True:
            token = int(logits.argmax())
            if ttft is None:
                ttft = time.perf_counter() - start
            if token in self.model.stop_token_ids:
                stop_reason = 'eos'
                break
            token_ids.append(token)
            decoded = tokenizer.decode(token_ids, skip_special_tokens=True)
            delta = (
                '' if decoded.endswith('\ufffd') else decoded[len(text):]
            )  # hold back partial UTF-8
            text += delta
            if on_token is not None and on_token(token, delta) is False:
                stop_reason = 'cancelled'
                break
            if len(token_ids) >= limit:
                break
            hidden = self.model.embed_tokens(torch.tensor([token]))
            for layer in range(self.model.num_layers):
                hidden = self.llm.layer_forward(layer, hidden, context.attend)
            logits = self.llm.logits(hidden)[0]
        evidence = context.evidence()
        return Answer(
            text=tokenizer.decode(token_ids, skip_special_tokens=True),
            token_ids=token_ids,
            evidence=evidence,
            ttft_s=ttft,
            total_s=time.perf_counter() - start,
            tokens_attended=context.tokens_attended,
            frames_in_memory=self.memory.frames_in_memory(),
            stop_reason=stop_reason,
            evidence_images=self.thumbnails.within(evidence, MAX_EVIDENCE_IMAGES),
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked_stream(
    stream: dict[str, Any], pixel_shape: tuple[int, ...], dtype: torch.dtype
) -> dict[str, Any]:
    """
    Check the ``stream`` part of :meth:`StreamingVLM.state`; return it with float stamps.

    ``pixel_shape`` is ``(frames_per_clip, 3, S, S)``: fewer than a clip may be buffered.

    Raises:
        ValueError: naming the entry that is missing or does not fit.
    """
    for name in ('frames_ingested', 'clips_prefilled'):
        if not _is_count(stream.get(name)):
            raise ValueError(f'stream state {name} must be a non-negative int')
    newest = stream.get('newest_stamp')
    if newest is not None and not _is_seconds(newest):
        raise ValueError(f'stream state newest_stamp must be finite seconds, got {newest!r}')
    frames, stamps = stream.get('pending_frames'), stream.get('pending_stamps')
    if not (isinstance(frames, list) and all(_is_count(f) for f in frames)):
        raise ValueError('stream state pending_frames must be a list of frame indices')
    if not (isinstance(stamps, list) and all(_is_seconds(t) for t in stamps)):
        raise ValueError('stream state pending_stamps must be a list of finite seconds')
    pixels = stream.get('pending_pixels')
    if pixels is not None and (
        not isinstance(pixels, torch.Tensor)
        or pixels.dtype != dtype
        or tuple(pixels.shape[1:]) != pixel_shape[1:]
        or not 0 < pixels.shape[0] < pixel_shape[0]
    ):
        raise ValueError(
            f'stream state pending_pixels must be None or 1 to {pixel_shape[0] - 1} frames '
            f'{list(pixel_shape[1:])} {dtype} (fewer than a clip)'
        )
    num_pending = 0 if pixels is None else pixels.shape[0]
    if not len(frames) == len(stamps) == num_pending:
        raise ValueError(
            f'stream state buffers {num_pending} frames but lists {len(frames)} frame '
            f'indices and {len(stamps)} stamps'
        )
    return {
        **stream,
        'newest_stamp': None if newest is None else float(newest),
        'pending_stamps': [float(t) for t in stamps],
    }
