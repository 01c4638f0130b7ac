# Copyright 2026 ros2_livevlm maintainers
# SPDX-License-Identifier: Apache-2.0
"""
The LLM compiled in four graphs around the memory: where the cut is, the export, the runner.

The memory decides, per layer, which keys a query attends to and at which RoPE positions
(VSB while streaming, PaR at answer time, spec A.4): PaR needs each layer's own pre-RoPE
question queries *before* that layer's context is chosen, and VSB needs the rotated keys
and the observation queries. So the decoder is cut at the attention, and the attention
itself is a graph the memory calls as its kernel::

    hidden [T, D] --qkv[l]--> q [H, T, d], k, v [G, T, d] (pre-RoPE)
        memory: choose context (VSB / PaR / window ...), RoPE, store K/V
        --attention--> [H, T, d]     (q after RoPE, context keys/values [G, S, d], causal
                                      over the last T keys, GQA; MemoryKernels.attention)
    --output[l]--> hidden [T, D]    (o_proj + residual + norm + MLP + residual)
    ... 24 layers ... --head--> logits [T, V] float32 (final norm + LM head)

Four graphs, each exported once and shared by every layer: the layer weights are graph
*inputs*, bound per call (zero-copy) to the loaded model's own parameters. So no weight is
held twice (a Jetson shares one memory between CPU and GPU: a 7B model's 15 GB could not
be duplicated into per-layer engines), an export is four small files whatever the depth,
and TensorRT builds four engines instead of 2L + 2. On onnxruntime's CPU provider weights
as inputs cost nothing measurable: a [1 or 2048, 896] x [896, 4864] MatMul took the same
time with the weight as an input or an initializer (0.20 / 0.21 ms, 104 / 116 ms).

FLOPs per part for Qwen2-0.5B (D 896, H 14, G 2, d 64, MLP 4864, 24 layers, vocabulary
151,936), per token per layer unless said; S = keys attended:

=================================  ==================  =======================================
part                               FLOPs               where
=================================  ==================  =======================================
norm + q/k/v (``qkv``)             2.06 M              graph
attention (``attention``)          3,584 x S           graph (weight-free, all layers)
o_proj + norm + MLP (``output``)   27.75 M             graph
final norm + LM head (``head``)    272.3 M per token   graph (decode: once per token)
RoPE of q and k                    ~3 k                memory (torch)
RoPE of the cached keys            ~0.4 k per key      memory (torch), clip prefill
VSB scores (r = 392)               702 k x S per clip  memory (torch / Triton), when it evicts
=================================  ==================  =======================================

- Clip prefill (32 frames = 6,272 tokens over the LiveVLM memory: 20 init + 12,000
  long-term + 392 short-term keys, so S = 15,548 on average): 187 GFLOP dense + 349 GFLOP
  attention per layer in the graphs (attention is 65 %), 13 GFLOP of VSB scores and
  0.03 GFLOP of RoPE outside: 97.6 % in the graphs (100 % of the LLM's own FLOPs; VSB
  is the memory's compression, not the model).
- Decode (answer context 20 + 0.4 x 12,000 + 392 + ~30 prompt = 5,242 keys): 716 MFLOP
  dense + 451 MFLOP attention + 272 MFLOP LM head per token in the graphs, ~0.1 MFLOP
  of RoPE outside: > 99.99 %. Without the LM head in a graph it would be 81 %.

Boundaries: three graph calls per layer and one for the head. Fusing ``output`` of layer
``l`` with ``qkv`` of layer ``l + 1`` would save one call per layer; the measured cost of
a call is in the README (``bench.llm_backends``): small next to a layer on CPU, and on a GPU
the calls are asynchronous launches on one stream. Queries are run in blocks of
:data:`QUERY_BLOCK` (exact: a block sees the keys up to its last query), so the score
matrix of a 6,272-token clip is never materialised at once.

Exported per (checkpoint fingerprint, precision) into ``<cache>/onnx/llm-...`` (:mod:`.cache`);
float32, float16 or bfloat16 graphs in the model's dtype, RMSNorm and softmax in float32
(HF's Qwen2 norm computes in float32; the attention graph casts its scores).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
import logging
from pathlib import Path

import onnx
import torch
from torch.func import functional_call

from .cache import model_fingerprint
from .cache import onnx_export_dir
from .cache import precision_of
from ..config import staged_directory
from ..models import LlavaOnevision
from ..models.llava_onevision import attention_inputs
from ..models.llava_onevision import attention_output
from ..models.llava_onevision import DecoderParts
from ..models.llava_onevision import lm_logits


log = logging.getLogger(__name__)

OPSET = 18
QUERY_BLOCK = 512
"""Queries per attention call: bounds the ``[H, QUERY_BLOCK, S]`` float32 scores."""
EXPORT_TOKENS, EXPORT_KEYS = 3, 7
"""Sizes of the dynamic axes in the export's example inputs (not 1: torch.export specializes)."""


@dataclass(frozen=True)
class Part:
    """
    One exported graph.

    Attributes:
        name: ``qkv``, ``attention``, ``output`` or ``head``; the engine is ``llm_<name>``.
        inputs: activation inputs, each with its dynamic axes (``tokens``, ``queries``,
            ``keys``) by dimension index.
        outputs: output names.
        weight_prefixes: parameter name prefixes of the template module that are bound as
            weight inputs (the parameter names are the graph's input names).
    """

    name: str
    inputs: dict[str, dict[int, str]]
    outputs: tuple[str, ...]
    weight_prefixes: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        return f'llm_{self.name}.onnx'


QKV = Part(
    'qkv',
    {'hidden': {0: 'tokens'}},
    ('query', 'key', 'value'),
    ('input_layernorm.', 'self_attn.q_proj.', 'self_attn.k_proj.', 'self_attn.v_proj.'),
)
ATTENTION = Part(
    'attention',
    {'query': {1: 'queries'}, 'key': {1: 'keys'}, 'value': {1: 'keys'}},
    ('output',),
)
OUTPUT = Part(
    'output',
    {'hidden': {0: 'tokens'}, 'attention': {1: 'tokens'}},
    ('hidden_out',),
    ('self_attn.o_proj.', 'post_attention_layernorm.', 'mlp.'),
)
HEAD = Part('head', {'hidden': {0: 'tokens'}}, ('logits',), ('norm.', 'lm_head.'))
PARTS = (QKV, ATTENTION, OUTPUT, HEAD)


def gqa_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """
    ``softmax(q kᵀ / sqrt(d)) v`` over ``[context | own tokens]``, causal, grouped-query.

    The graph of the ``attention`` part, the same contract as the memory's reference
    :func:`ros2_livevlm.memory.attention.attention` written with exportable ops: queries
    are scaled before the first matrix product (as TensorRT's attention fusion requires),
    the scores are float32 with a lower-right causal mask, and each KV head serves its
    ``H / G`` query heads by broadcasting (no repeated K/V).

    Args:
        query: after RoPE, ``[H, T, d]``.
        key: after RoPE, ``[G, S, d]`` with ``S >= T``; the last ``T`` are the queries' own.
        value: ``[G, S, d]``.

    Returns:
        ``[H, T, d]`` in ``query``'s dtype.
    """
    num_heads, num_queries, head_dim = query.shape
    num_kv_heads, num_keys, _ = key.shape
    q = (query * head_dim**-0.5).reshape(
        num_kv_heads, num_heads // num_kv_heads, num_queries, head_dim
    )  # [G, H/G, T, d]
    scores = torch.matmul(q, key.unsqueeze(1).transpose(-1, -2)).float()  # [G, H/G, T, S]
    query_pos = torch.arange(num_queries, device=query.device) + (num_keys - num_queries)
    visible = torch.arange(num_keys, device=query.device)[None, :] <= query_pos[:, None]
    scores = scores.masked_fill(~visible, float('-inf'))  # [T, S] mask, lower right
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value.unsqueeze(1))  # [G, H/G, T, d]
    return out.reshape(num_heads, num_queries, head_dim)


class _Bound(torch.nn.Module):
    """``fn(template, *args)`` as a module whose parameters are the template's."""

    def __init__(self, fn: Callable[..., object], template: torch.nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.template = template

    def forward(self, *args: object) -> object:
        return self.fn(self.template, *args)


class PartGraph(torch.nn.Module):
    """
    A part as a module to export: activations and weights are both inputs.

    ``forward(*activations, weights={name: tensor})`` runs ``fn`` on a template module
    whose parameters are replaced by ``weights`` (``torch.func.functional_call``), so the
    exported graph has no initializers: one graph serves every layer. The template is
    kept outside the module tree, so torch.export does not lift its own parameters.
    """

    def __init__(self, fn: Callable[..., object], template: torch.nn.Module) -> None:
        super().__init__()
        self._bound = [_Bound(fn, template)]  # a list: not a submodule

    def forward(
        self, *activations: torch.Tensor, weights: dict[str, torch.Tensor] | None = None
    ) -> object:
        bound = self._bound[0]
        params = {f'template.{name}': tensor for name, tensor in (weights or {}).items()}
        return functional_call(bound, params, activations)


class _Head(torch.nn.Module):
    """The final norm and LM head as one template module (parameters ``norm.*``, ``lm_head.*``)."""

    def __init__(self, model: LlavaOnevision) -> None:
        super().__init__()
        self.norm = model.hf.model.language_model.norm
        self.lm_head = model.hf.lm_head


def part_weights(module: torch.nn.Module, part: Part) -> dict[str, torch.Tensor]:
    """Parameters of ``module`` that ``part`` takes as weight inputs, by name (detached)."""
    return {
        name: param.detach()
        for name, param in module.named_parameters()
        if name.startswith(part.weight_prefixes)
    }


def _check_layer_parameters(layer: torch.nn.Module) -> None:
    covered = QKV.weight_prefixes + OUTPUT.weight_prefixes
    missing = [name for name, _ in layer.named_parameters() if not name.startswith(covered)]
    if missing:
        raise ValueError(
            f'decoder layer parameters {missing} are in no exported part; '
            'only the Qwen2 layer of LLaVA-OneVision is supported by the compiled LLM'
        )


def _export_part(
    module: PartGraph,
    part: Part,
    activations: tuple[torch.Tensor, ...],
    weights: dict[str, torch.Tensor],
    path: Path,
) -> None:
    dims: dict[str, torch.export.Dim] = {}
    dynamic: dict[str, object] = {
        'activations': tuple(
            {axis: dims.setdefault(name, torch.export.Dim(name, min=1)) for axis, name in named}
            for named in (axes.items() for axes in part.inputs.values())
        )
    }
    if weights:
        dynamic['weights'] = dict.fromkeys(weights)
    torch.onnx.export(
        module.eval(),
        activations,
        str(path),
        kwargs={'weights': weights} if weights else None,
        dynamo=True,
        opset_version=OPSET,
        input_names=[*part.inputs, *weights],
        output_names=list(part.outputs),
        dynamic_shapes=dynamic,
        verbose=False,
    )
    onnx.checker.check_model(str(path), full_check=True)


def export_llm_onnx(
    model: LlavaOnevision, directory: str | Path, *, dtype: torch.dtype = torch.float32
) -> Path:
    """
    Export the four LLM parts of ``model`` (:data:`PARTS`) into ``directory``.

    Args:
        model: a loaded LLaVA-OneVision (any device and dtype; it is not modified).
        directory: an existing directory; receives ``llm_qkv.onnx``, ``llm_attention.onnx``,
            ``llm_output.onnx`` and ``llm_head.onnx`` (no weights: they are inputs).
        dtype: float32, float16 or bfloat16: the dtype of activations and weights.

    Returns:
        ``directory``. Graph inputs: the activations of :data:`PARTS` (``tokens``,
        ``queries``, ``keys`` dynamic), then the weights named as the HF parameters
        (e.g. ``self_attn.q_proj.weight``); ``logits`` are float32.

    Raises:
        ValueError: a dtype other than the three above, or a decoder layer with parameters
            the parts do not cover.
        onnx.checker.ValidationError: an exported file is not valid ONNX.
    """
    precision_of(dtype)  # raises ValueError for other dtypes
    directory = Path(directory)
    layer = model.layers[0]
    _check_layer_parameters(layer)
    heads, kv_heads, head_dim = model.num_heads, model.num_kv_heads, model.head_dim
    device = model.device

    def example(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype, device=device)

    def weights(module: torch.nn.Module, part: Part) -> dict[str, torch.Tensor]:
        return {name: w.to(dtype) for name, w in part_weights(module, part).items()}

    hidden = example(EXPORT_TOKENS, model.hidden_size)
    jobs = [
        (
            PartGraph(lambda lyr, h: attention_inputs(lyr, h, heads, kv_heads), layer),
            QKV,
            (hidden,),
            weights(layer, QKV),
        ),
        (
            PartGraph(lambda _, q, k, v: gqa_attention(q, k, v), torch.nn.Module()),
            ATTENTION,
            (
                example(heads, EXPORT_TOKENS, head_dim),
                example(kv_heads, EXPORT_KEYS, head_dim),
                example(kv_heads, EXPORT_KEYS, head_dim),
            ),
            {},
        ),
        (
            PartGraph(attention_output, layer),
            OUTPUT,
            (hidden, example(heads, EXPORT_TOKENS, head_dim)),
            weights(layer, OUTPUT),
        ),
        (
            PartGraph(lambda m, h: lm_logits(m.norm, m.lm_head, h), _Head(model)),
            HEAD,
            (hidden,),
            weights(_Head(model), HEAD),
        ),
    ]
    with torch.no_grad():
        for module, part, activations, part_weights_ in jobs:
            _export_part(module, part, activations, part_weights_, directory / part.file_name)
    return directory


def cached_llm_onnx(model: LlavaOnevision, dtype: torch.dtype) -> Path:
    """
    Return the directory of the cached LLM export of ``model`` at ``dtype``, exported on first use.

    Keyed by the model fingerprint, precision and export recipe (:mod:`.cache`); a first
    use logs a warning and exports into a staging directory renamed into place.

    Raises:
        ValueError: ``model`` was not loaded from a directory (no fingerprint), or as
            :func:`export_llm_onnx`.
    """
    if model.path is None:
        raise ValueError(
            'the compiled LLM backends need a model loaded from a directory '
            '(LlavaOnevision.from_pretrained)'
        )
    target = onnx_export_dir(model_fingerprint(model.path), precision_of(dtype), 'llm')
    if all((target / part.file_name).is_file() for part in PARTS):
        return target
    log.warning(
        'exporting the LLM of %s to ONNX (%s) into %s; once per model and precision',
        model.path,
        precision_of(dtype),
        target,
    )
    with staged_directory(target) as staging:
        export_llm_onnx(model, staging, dtype=dtype)
    return target


class CompiledDecoder(DecoderParts):
    """
    :class:`DecoderParts` run through the four exported graphs; a backend supplies :meth:`run`.

    Weights are bound per layer to ``model``'s parameters (no copy); outputs are allocated
    here as torch tensors on the model's device. :attr:`attention` is the attention graph
    in the memory kernel's signature (queries in blocks of :data:`QUERY_BLOCK`).

    Args:
        model: the loaded model (its parameters are the weights; its dtype the graphs').
    """

    name = 'compiled'

    def __init__(self, model: LlavaOnevision) -> None:
        self.model = model
        self.device, self.dtype = model.device, model.dtype
        self.layer_weights = [
            {part.name: part_weights(layer, part) for part in (QKV, OUTPUT)}
            for layer in model.layers
        ]
        self.head_weights = part_weights(_Head(model), HEAD)
        self.attention = self._attention

    @abstractmethod
    def run(
        self, part: Part, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]
    ) -> None:
        """Run ``part``'s graph on contiguous ``inputs``, writing into preallocated ``outputs``."""

    def token_limit(self, part: Part) -> int | None:
        """
        Return the most tokens (queries for the attention) ``part`` takes per call.

        Longer inputs run in chunks, exactly: ``qkv``, ``output`` and ``head`` are per
        token, and an attention block sees the keys up to its last query. ``None``: no limit.
        """
        return QUERY_BLOCK if part is ATTENTION else None

    def _empty(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype or self.dtype, device=self.device)

    def _chunks(self, num_tokens: int, limit: int | None) -> list[slice]:
        step = limit or num_tokens
        return [slice(a, min(a + step, num_tokens)) for a in range(0, num_tokens, step)]

    @torch.inference_mode()
    def attention_inputs(
        self, layer_idx: int, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pre-RoPE ``q [H, T, d]``, ``k, v [G, T, d]`` of layer ``layer_idx`` (``qkv`` graph)."""
        model = self.model
        parts = []
        for span in self._chunks(hidden.shape[0], self.token_limit(QKV)):
            num = span.stop - span.start
            out = {
                'query': self._empty(model.num_heads, num, model.head_dim),
                'key': self._empty(model.num_kv_heads, num, model.head_dim),
                'value': self._empty(model.num_kv_heads, num, model.head_dim),
            }
            inputs = {'hidden': hidden[span].contiguous(), **self.layer_weights[layer_idx]['qkv']}
            self.run(QKV, inputs, out)
            parts.append(out)
        if len(parts) == 1:
            return parts[0]['query'], parts[0]['key'], parts[0]['value']
        return tuple(torch.cat([p[name] for p in parts], dim=1) for name in QKV.outputs)

    @torch.inference_mode()
    def attention_output(
        self, layer_idx: int, hidden: torch.Tensor, attn_out: torch.Tensor
    ) -> torch.Tensor:
        """Residual stream ``[T, D]`` after layer ``layer_idx`` (``output`` graph)."""
        outputs = []
        for span in self._chunks(hidden.shape[0], self.token_limit(OUTPUT)):
            out = self._empty(span.stop - span.start, self.model.hidden_size)
            inputs = {
                'hidden': hidden[span].contiguous(),
                'attention': attn_out[:, span].contiguous(),
                **self.layer_weights[layer_idx]['output'],
            }
            self.run(OUTPUT, inputs, {'hidden_out': out})
            outputs.append(out)
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the final norm and LM head: ``[T, D]`` -> ``[T, V]`` float32 (``head`` graph)."""
        vocab = self.head_weights['lm_head.weight'].shape[0]
        outputs = []
        for span in self._chunks(hidden.shape[0], self.token_limit(HEAD)):
            out = self._empty(span.stop - span.start, vocab, dtype=torch.float32)
            inputs = {'hidden': hidden[span].contiguous(), **self.head_weights}
            self.run(HEAD, inputs, {'logits': out})
            outputs.append(out)
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    @torch.inference_mode()
    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """
        ``(q [H, T, d], k [G, S, d], v [G, S, d]) -> [H, T, d]``: the ``attention`` graph.

        Keys and values per query head (``[H, S, d]``, what a retrieval that selects per
        query head returns) take ``H / G`` graph calls: call ``i`` gives KV head ``g`` the
        keys of query head ``g * H / G + i``, and keeps those heads' outputs.
        """
        heads, groups = q.shape[0], self.model.num_kv_heads
        if k.shape[0] == heads and heads != groups:
            out = torch.empty_like(q)
            for i in range(heads // groups):
                chosen = torch.arange(i, heads, heads // groups, device=q.device)
                out[chosen] = self._attention(q, k[chosen], v[chosen])[chosen]
            return out
        num_queries, num_keys = q.shape[1], k.shape[1]
        blocks = []
        for span in self._chunks(num_queries, self.token_limit(ATTENTION)):
            visible = num_keys - num_queries + span.stop  # keys up to the block's last query
            block = self._empty(q.shape[0], span.stop - span.start, q.shape[2])
            inputs = {
                'query': q[:, span].contiguous(),
                'key': k[:, :visible].contiguous(),
                'value': v[:, :visible].contiguous(),
            }
            self.run(ATTENTION, inputs, {'output': block})
            blocks.append(block)
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)


__all__ = [
    'ATTENTION',
    'HEAD',
    'OUTPUT',
    'PARTS',
    'QKV',
    'QUERY_BLOCK',
    'CompiledDecoder',
    'Part',
    'PartGraph',
    'cached_llm_onnx',
    'export_llm_onnx',
    'gqa_attention',
    'part_weights',
]
