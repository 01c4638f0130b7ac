# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
What every Triton kernel wrapper checks before a launch: dtypes, devices, strides.

Triton reads ``TRITON_INTERPRET`` when a kernel is *defined* (``@triton.jit``, at import of
the module that holds it): with ``TRITON_INTERPRET=1`` set before
``ros2_livevlm.backends.triton_*`` is imported, the kernels run on CPU tensors in Triton's
interpreter (slow; for tests). Otherwise they need CUDA tensors. In the interpreter,
bfloat16 matrix products are wrong: test in float32 and float16.
"""

from __future__ import annotations

import torch
import triton
from triton.runtime.jit import JITFunction


FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _probe() -> None:
    pass


def interpreted() -> bool:
    """Tell if this process defined its Triton kernels for the interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(_probe, JITFunction)


def check_tensor(
    name: str,
    tensor: torch.Tensor,
    *,
    ndim: int,
    device: torch.device | None = None,
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
) -> None:
    """
    Raise ``ValueError`` naming ``name`` unless ``tensor`` can be handed to a kernel.

    Checks: a ``torch.Tensor`` of ``ndim`` dimensions and one of ``dtypes``, on ``device``
    (if given), contiguous in its last dimension, and on CUDA unless the kernels run in the
    interpreter.
    """
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != ndim:
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f'{name} must be a {ndim}-D tensor, got {got}')
    if tensor.dtype not in dtypes:
        raise ValueError(
            f'{name} has dtype {tensor.dtype}; expected one of {", ".join(map(str, dtypes))}'
        )
    if device is not None and tensor.device != device:
        raise ValueError(
            f'{name} is on {tensor.device}, expected {device} (all inputs on one device)'
        )
    if tensor.numel() and tensor.stride(-1) != 1:
        raise ValueError(
            f'{name} must be contiguous in its last dimension, got strides {tensor.stride()}'
        )
    if tensor.device.type != 'cuda' and not interpreted():
        raise ValueError(
            f'{name} is on {tensor.device}: Triton kernels need CUDA tensors, '
            'or TRITON_INTERPRET=1 set before ros2_livevlm.backends.triton_* is imported '
            '(CPU interpreter, for tests)'
        )
