"""The compute kernels the memory calls, as one swappable set.

The torch functions here are the reference and the CPU path; compiled kernels (Triton,
``ros2_livevlm.backends``) provide the same signatures and are tested against them. The
engine picks a set (``EngineConfig.kernels``) and hands it to the memory's attention
providers, so the memory never imports a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .attention import attention
from .par import page_scores
from .vsb import vsb_scores


@dataclass(frozen=True)
class MemoryKernels:
    """One implementation of each memory kernel.

    Attributes:
        attention: ``(q [H, T, d], k [G, S, d], v [G, S, d]) -> [H, T, d]``, causal over
            the last T keys (:func:`.attention.attention`).
        vsb_scores: ``(q_obs [H, r, d], k [G, S, d]) -> [S]`` float32 (:func:`.vsb.vsb_scores`).
        page_scores: ``(q [H, n_q, d], pages [G, P, d], allowed [P] | None) -> [P]`` float32
            (:func:`.par.page_scores`).
    """

    name: str
    attention: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    vsb_scores: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    page_scores: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


TORCH_KERNELS = MemoryKernels("torch", attention, vsb_scores, page_scores)
