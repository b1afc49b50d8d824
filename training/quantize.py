"""int8 quantisation of an exported BERT graph with activation scales fixed at export time.

ONNX Runtime's dynamic quantisation stores int8 weights but quantises each activation with a
scale computed from the tensor it sees at run time, that is, from the whole batch. A window's
logits then depend on the other windows it is batched with, and a service that merges requests
gives a text different answers under load (measured on the shipped model before this module: one
NORP of a seed article present alone, absent when the article was batched with copies of itself).

Here the dynamic graph is made static: each ``DynamicQuantizeLinear`` becomes a ``QuantizeLinear``
whose scale and zero point come from the activation's range over calibration windows, run through
the fp32 graph. Every window is then computed alone whatever its batch, bit for bit. The fused
operators stay: ``QAttention`` takes the fixed scale as an input, and each ``MatMulInteger -> Cast ->
Mul(scale)`` chain becomes one ``MatMulIntegerToFloat``: ONNX Runtime fuses the dynamic graph's
chains itself, but left them unfused once the scale was a constant (8% slower on the shipped model,
measured). With the rewrite the shipped 6-layer model runs at the dynamic graph's speed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

UINT8_STEPS = 255


@dataclass(frozen=True)
class ActivationRange:
    """The smallest and largest value a tensor took over the calibration windows."""

    low: float
    high: float


def uint8_scale_and_zero_point(activation: ActivationRange) -> tuple[np.float32, np.uint8]:
    """``DynamicQuantizeLinear``'s formula, applied to a calibrated range instead of one batch's:
    the range is widened to include 0 (so 0 is exact), ``scale = (high - low) / 255`` and
    ``zero_point = round(-low / scale)``.

    >>> uint8_scale_and_zero_point(ActivationRange(-1.0, 3.0))
    (np.float32(0.015686275), np.uint8(64))
    >>> uint8_scale_and_zero_point(ActivationRange(0.5, 2.55))  # all positive: 0 maps to 0
    (np.float32(0.01), np.uint8(0))
    """
    low, high = min(0.0, activation.low), max(0.0, activation.high)
    # A tensor that was 0 on every calibration window still needs a usable (non-zero) scale.
    scale = np.float32((high - low) / UINT8_STEPS if high > low else 1.0 / UINT8_STEPS)
    zero_point = np.uint8(np.clip(np.round(-low / scale), 0, UINT8_STEPS))
    return scale, zero_point


def classifier_matmul(graph) -> str | None:
    """Name of the MatMul that produces the logits (through a bias Add), if the graph has one."""
    producers = {output: node for node in graph.node for output in node.output}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type != "MatMul":
        if node.op_type not in ("Add", "Identity"):
            return None
        node = next((producers[name] for name in node.input if name in producers), None)
    return node.name if node is not None else None


def nodes_kept_fp32(graph, patterns: Sequence[str]) -> list[str]:
    """The names of the graph's nodes that stay fp32: the classifier (tiny, and its error would go
    straight into the logits) and every node whose name matches one of ``patterns`` (regular
    expressions, searched). A pattern that matches no node is an error naming it.

    >>> from onnx import helper
    >>> node = helper.make_node("MatMul", ["a", "w"], ["b"], name="/layer.0/output/dense/MatMul")
    >>> graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("logits", 1, None)])
    >>> nodes_kept_fp32(graph, [r"layer\\.0/output"])
    ['/layer.0/output/dense/MatMul']
    """
    kept = [name] if (name := classifier_matmul(graph)) else []
    for pattern in patterns:
        matched = [node.name for node in graph.node if re.search(pattern, node.name)]
        if not matched:
            raise ValueError(f"--keep-fp32 {pattern!r} matches no node of the graph")
        kept += [name for name in matched if name not in kept]
    return kept


def quantize_dynamic_int8(source: Path, target: Path, keep_fp32: Sequence[str] = ()) -> None:
    """ONNX Runtime's dynamic int8 quantisation: weights int8 per output channel, the word-embedding
    table stored as uint8 (in fp32 it would be half of an int8 BERT-base file). The nodes of
    ``nodes_kept_fp32`` stay fp32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = nodes_kept_fp32(onnx.load(str(source), load_external_data=False).graph, keep_fp32)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a generic "consider pre-processing" warning via the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul", "Attention", "EmbedLayerNormalization"],
            nodes_to_exclude=excluded or None,
            per_channel=True,
            weight_type=QuantType.QInt8,
            # Fused contrib ops (Attention, SkipLayerNormalization) defeat shape inference; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def dynamically_quantised_tensors(model) -> list[str]:
    """The float tensors the dynamic graph quantises at run time, in graph order."""
    return list(dict.fromkeys(node.input[0] for node in model.graph.node if node.op_type == "DynamicQuantizeLinear"))


def activation_ranges(
    fp32_graph: Path, tensors: list[str], batches: Iterable[tuple[np.ndarray, np.ndarray]], intra_op_num_threads: int
) -> dict[str, ActivationRange]:
    """Min and max of each named tensor of ``fp32_graph`` over the real (non-padding) positions of
    ``batches`` (``(input_ids, attention_mask)`` pairs, as the tagger pads them)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from serving.tagger import session_options

    model = onnx.load(str(fp32_graph))
    model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in tensors)
    session = ort.InferenceSession(model.SerializeToString(), session_options(intra_op_num_threads), providers=["CPUExecutionProvider"])
    lows = dict.fromkeys(tensors, np.inf)
    highs = dict.fromkeys(tensors, -np.inf)
    for input_ids, attention_mask in batches:
        real = attention_mask.astype(bool)
        for name, values in zip(tensors, session.run(tensors, {"input_ids": input_ids, "attention_mask": attention_mask}), strict=True):
            lows[name] = min(lows[name], float(values[real].min()))
            highs[name] = max(highs[name], float(values[real].max()))
    if any(np.isinf(low) for low in lows.values()):
        raise ValueError("no calibration windows: int8 activation scales need at least one text with words")
    return {name: ActivationRange(lows[name], highs[name]) for name in tensors}


def freeze_activation_scales(model, ranges: dict[str, ActivationRange]) -> None:
    """Rewrite a dynamically quantised graph in place so that no scale depends on the batch.

    * ``DynamicQuantizeLinear(x) -> (x_q, scale, zero_point)`` becomes ``QuantizeLinear(x, scale,
      zero_point) -> x_q``, with ``scale`` and ``zero_point`` constants from ``ranges[x]`` (same
      output names, so ``QAttention`` and ``MatMulInteger`` read them unchanged);
    * ``MatMulInteger(a_q, w_q, a_zp, w_zp) -> Cast -> Mul(Mul(a_scale, w_scale))`` becomes
      ``MatMulIntegerToFloat(a_q, w_q, a_scale, w_scale, a_zp, w_zp)``, one fused kernel.

    Raises ValueError naming a quantised tensor without a range, or a MatMulInteger whose output
    is not the quantiser's Cast-Mul chain (a graph this function was not written for).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {output: node for node in graph.node for output in node.output}

    replacements, removed, constants = {}, set(), []
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear":
            activation = node.input[0]
            if activation not in ranges:
                raise ValueError(f"no calibrated range for {activation!r} (quantised by {node.name!r})")
            scale, zero_point = uint8_scale_and_zero_point(ranges[activation])
            quantized, scale_name, zero_point_name = node.output
            constants += [
                numpy_helper.from_array(np.array(scale), scale_name),
                numpy_helper.from_array(np.array(zero_point), zero_point_name),
            ]
            replacements[node.name] = helper.make_node(
                "QuantizeLinear", [activation, scale_name, zero_point_name], [quantized], name=f"{node.name}_static"
            )
        elif node.op_type == "MatMulInteger":
            cast = single_consumer(consumers, node, "Cast")
            rescale = single_consumer(consumers, cast, "Mul")
            scales = producers.get(next(name for name in rescale.input if name != cast.output[0]))
            if scales is None or scales.op_type != "Mul":
                raise ValueError(f"{node.name}: expected its rescaling Mul to multiply by Mul(activation scale, weight scale)")
            activation, weight, activation_zero_point, weight_zero_point = node.input
            replacements[node.name] = helper.make_node(
                "MatMulIntegerToFloat",
                [activation, weight, scales.input[0], scales.input[1], activation_zero_point, weight_zero_point],
                [rescale.output[0]],
                name=f"{node.name}_to_float",
                domain="com.microsoft",
            )
            removed |= {cast.name, rescale.name}
            if len(consumers[scales.output[0]]) == 1:
                removed.add(scales.name)
    rewritten = [replacements.get(node.name, node) for node in graph.node if node.name not in removed]
    del graph.node[:]
    graph.node.extend(rewritten)
    graph.initializer.extend(constants)


def single_consumer(consumers: dict[str, list], node, op_type: str):
    """The one node reading ``node``'s output, which must be an ``op_type``."""
    readers = consumers.get(node.output[0], [])
    if len(readers) != 1 or readers[0].op_type != op_type:
        found = ", ".join(reader.op_type for reader in readers) or "nothing"
        raise ValueError(f"{node.name}: expected its output to feed one {op_type}, found {found}")
    return readers[0]


def quantize_int8(
    source: Path,
    target: Path,
    calibration: Iterable[tuple[np.ndarray, np.ndarray]],
    intra_op_num_threads: int,
    keep_fp32: Sequence[str] = (),
) -> int:
    """Quantise the fp32 graph ``source`` into ``target``: dynamic int8 weights, then activation
    scales frozen from ``calibration`` batches run through ``source``; nodes matching ``keep_fp32``
    stay fp32 (``nodes_kept_fp32``). Returns how many activation tensors were calibrated."""
    import onnx

    dynamic = target.with_name(target.stem + ".dynamic.onnx")
    quantize_dynamic_int8(source, dynamic, keep_fp32)
    model = onnx.load(str(dynamic))
    dynamic.unlink()
    tensors = dynamically_quantised_tensors(model)
    freeze_activation_scales(model, activation_ranges(source, tensors, calibration, intra_op_num_threads))
    onnx.save(model, str(target))
    return len(tensors)
