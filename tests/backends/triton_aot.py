# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
Compile the Triton kernels for NVIDIA targets with Triton's own compiler, no GPU needed.

Run as a script (``python tests/backends/triton_aot.py 87 90``) in a process without
``TRITON_INTERPRET``: the interpreter runs kernels in numpy and cannot catch what only the
compiler checks (types, layouts, ``tl.dot`` shapes, register allocation by ptxas). One
variant per kernel at the shapes the engine launches (Qwen2-0.5B: GQA group 7, head dim
64; bfloat16; decode and prompt; paged and tail). Prints one line per compiled kernel
and exits non-zero on the first failure.
"""

from __future__ import annotations

import sys

from ros2_livevlm.backends import triton_attention
from ros2_livevlm.backends import triton_scores
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource


GROUP, HEAD_DIM, DTYPE = 7, 64, 'bf16'


def compile_kernel(
    fn, types: dict[str, str], constexprs: dict[str, object], target: GPUTarget
) -> None:
    signature = {
        name: 'constexpr' if name in constexprs else types.get(name, 'i32')
        for name in fn.arg_names
    }
    compiled = triton.compile(
        ASTSource(fn, signature, constexprs), target=target, options={'num_warps': 4}
    )
    assert compiled.asm['cubin'], fn.__name__
    print(f'sm_{target.arch} {fn.__name__} {constexprs}')


def main(archs: list[int]) -> None:
    for arch in archs:
        target = GPUTarget('cuda', arch, 32)
        pointers = {
            'q_ptr': f'*{DTYPE}',
            'k_ptr': f'*{DTYPE}',
            'lse_ptr': '*fp32',
            'sums_ptr': '*fp32',
        }
        pointers['scale_log2'] = 'fp32'
        for causal in (True, False):  # VSB (causal), PaR (page mask)
            types = {**pointers, 'mask_ptr': '*fp32' if causal else '*i1'}
            constexprs = {
                'GROUP': GROUP,
                'CAUSAL': causal,
                'HAS_MASK': not causal,
                'HEAD_DIM': HEAD_DIM,
                'BLOCK_D': HEAD_DIM,
                'BLOCK_R': 64,
                'BLOCK_S': 64,
            }
            compile_kernel(triton_scores._row_stats_kernel, types, constexprs, target)
            compile_kernel(triton_scores._column_sums_kernel, types, constexprs, target)
        types = {
            'q_ptr': f'*{DTYPE}',
            'k_ptr': f'*{DTYPE}',
            'v_ptr': f'*{DTYPE}',
            'pos_ptr': '*i64',
            'starts_ptr': '*i32',
            'lengths_ptr': '*i32',
            'inv_freq_ptr': '*fp32',
            'max_ptr': '*fp32',
            'sum_ptr': '*fp32',
            'out_ptr': '*fp32',
            'scale_log2': 'fp32',
            'rope_scale': 'fp32',
        }
        for paged, block_t in (
            (True, 1),
            (False, 1),
            (True, 8),
        ):  # decode over pages and tail; prompt
            constexprs = {
                'GROUP': GROUP,
                'BLOCK_T': block_t,
                'BLOCK_M': max(16, triton.next_power_of_2(GROUP * block_t)),
                'PAGED': paged,
                'PAGE_SIZE': 16,
                'HEAD_DIM': HEAD_DIM,
                'HALF': HEAD_DIM // 2,
                'BLOCK_HALF': HEAD_DIM // 2,
                'BLOCK_D': HEAD_DIM,
                'BLOCK_N': 64,
            }
            compile_kernel(triton_attention._split_kernel, types, constexprs, target)
        types = {'max_ptr': '*fp32', 'sum_ptr': '*fp32', 'part_ptr': '*fp32', 'o_ptr': f'*{DTYPE}'}
        constexprs = {
            'HEAD_DIM': HEAD_DIM,
            'BLOCK_D': HEAD_DIM,
            'BLOCK_ROWS': 1,
            'BLOCK_SPLITS': 64,
        }
        compile_kernel(triton_attention._merge_kernel, types, constexprs, target)


if __name__ == '__main__':
    main([int(arch) for arch in sys.argv[1:]])
