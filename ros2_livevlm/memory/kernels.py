# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The compute kernels the memory calls, as one swappable set.

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
from .attention import PagedKV
from .par import page_scores
from .rope import Rope
from .vsb import vsb_scores


@dataclass(frozen=True)
class MemoryKernels:
    """
    One implementation of each memory kernel.

    Attributes:
        attention: ``(q [H, T, d], k [G, S, d], v [G, S, d]) -> [H, T, d]``, causal over
            the last T keys (:func:`.attention.attention`).
        vsb_scores: ``(q_obs [H, r, d], k [G, S, d]) -> [S]`` float32 (:func:`.vsb.vsb_scores`).
        page_scores: ``(q [H, n_q, d], pages [G, P, d], allowed [P] | None) -> [P]`` float32
            (:func:`.par.page_scores`).
        paged_attention: ``(q [H, T, d], context PagedKV, k_tail [G, T_tail, d], v_tail, rope)
            -> [H, T, d]``: the answer's attention reading the memory in place through a page
            table, RoPE applied from positions (reference :func:`.attention.paged_attention`).
            ``None``: the answer context gathers the attended tokens once into a contiguous
            rotated buffer and calls ``attention`` (the CPU path).
    """

    name: str
    attention: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    vsb_scores: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    page_scores: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    paged_attention: (
        Callable[[torch.Tensor, PagedKV, torch.Tensor, torch.Tensor, Rope], torch.Tensor] | None
    ) = None


TORCH_KERNELS = MemoryKernels('torch', attention, vsb_scores, page_scores)
