# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Faults at the engine boundary: a real StreamingVLM whose calls fail or slow down on demand.

:class:`FaultyEngine` runs the real engine code on the real (tiny) model; a test queues
exceptions per operation (``ingest``, ``flush``, ``reset``, ``answer``), each raised once at
the end of the next step of that operation, and may slow every ingestion step down. It also records
what the memory held when each question was asked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
import time
from typing import Any

from ros2_livevlm.engine import StreamingVLM


class FaultyEngine(StreamingVLM):
    """
    StreamingVLM with injected faults and delays (the tests' engine subclass).

    Attributes:
        faults: operation -> exceptions still to raise, in order.
        step_s: sleep per ingestion step (encoder, each layer), s.
        asked: ``(newest_stamp, frames_pending)`` of the memory at each ``ask``.
    """

    @classmethod
    def sharing(cls, engine: StreamingVLM) -> FaultyEngine:
        """Return a FaultyEngine with an empty memory on ``engine``'s model and settings."""
        return cls(engine.model, engine.memory_config, engine.engine_config,
                   vision_encoder=engine.encode)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.faults: dict[str, list[Exception]] = defaultdict(list)
        self.step_s = 0.0
        self.asked: list[tuple[float | None, int]] = []
        super().__init__(*args, **kwargs)

    def _fault(self, operation: str) -> None:
        if self.faults[operation]:
            raise self.faults[operation].pop(0)

    def _slowed(self, operation: str, steps: Iterator[None]) -> Iterator[None]:
        try:
            for _ in steps:
                time.sleep(self.step_s)
                self._fault(operation)
                yield
        finally:
            steps.close()

    def ingest_iter(self, frames: Any, stamps: Any) -> Iterator[None]:
        return self._slowed('ingest', super().ingest_iter(frames, stamps))

    def flush_iter(self) -> Iterator[None]:
        return self._slowed('flush', super().flush_iter())

    def reset(self) -> None:
        self._fault('reset')
        super().reset()

    def ask(self, question: str, **kwargs: Any) -> Any:
        stats = self.stats()
        self.asked.append((stats.newest_stamp, stats.frames_pending))
        self._fault('answer')
        return super().ask(question, **kwargs)
