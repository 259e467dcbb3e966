"""The PP-OCRv4 detector with its spelled-out activations fused, before onnxruntime loads it.

The detector as exported (Paddle to ONNX) writes every hard-swish as four elementwise nodes
(``x + 3``, clipped to 0..6, times ``x``, divided by 6) and follows every convolution with a
learnable affine block (times a scalar, plus a scalar): some 200 elementwise nodes that
onnxruntime runs one by one, each a pass over a feature map (in its blocked layout, with a
reorder around it). On the small crops the pixel pass reads they cost about as much as the
convolutions. :func:`fuse` rewrites the graph:

- ``Conv -> Mul(scalar) -> Add(scalar)`` becomes one ``Conv`` whose weights and bias hold the
  affine (``w * a``, ``bias * a + b``);
- ``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6)`` becomes ``Mul(x, HardSigmoid(x))`` (alpha
  1/6, beta 1/2);
- ``Mul(scalar) -> Add(scalar) -> Conv`` where that convolution is pointwise (1 x 1, no
  padding: no border sees the affine) becomes that ``Conv`` with the affine in its weights
  and bias (``w * a``, ``bias + b * sum(w)``).

The function is the same; in float32 the results differ by rounding (up to ~1e-4 on the
probability map, whose threshold is 0.3: the same boxes on every benchmark frame). Nothing
else changes, and a pattern is rewritten only where it is exactly that: its intermediate
values used by nothing else, its constants scalars, its weights used by that convolution
alone. :class:`deid.ocr.rapid.RapidOcr` compares the rewritten detector with the original
on a probe image and keeps the original where they differ.

The model is read and written with protobuf (a dependency of onnxruntime) through the few
ONNX message fields used here, declared below by their field numbers (``onnx.proto``); every
other field is kept as it was read.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    Floats = npt.NDArray[np.float32]

__all__ = ["fuse"]

_FLOAT = 1  # TensorProto.DataType FLOAT
_ATTRIBUTE_FLOAT = 1  # AttributeProto.AttributeType FLOAT


def _messages() -> dict[str, Any]:
    """Message classes for the ONNX fields used (unknown fields are kept on a round trip)."""
    import importlib

    # (imported by name: protobuf ships without type stubs, and is only onnxruntime's)
    descriptor_pb2 = importlib.import_module("google.protobuf.descriptor_pb2")
    descriptor_pool = importlib.import_module("google.protobuf.descriptor_pool")
    message_factory = importlib.import_module("google.protobuf.message_factory")

    field = descriptor_pb2.FieldDescriptorProto
    one, many = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(
        name="deid_onnx_subset.proto", package="deid_onnx_subset", syntax="proto2"
    )
    layout: dict[str, list[tuple[str, int, int, int, str | None, bool]]] = {
        "TensorProto": [
            ("dims", 1, field.TYPE_INT64, many, None, False),
            ("data_type", 2, field.TYPE_INT32, one, None, False),
            ("float_data", 4, field.TYPE_FLOAT, many, None, True),
            ("name", 8, field.TYPE_STRING, one, None, False),
            ("raw_data", 9, field.TYPE_BYTES, one, None, False),
        ],
        "AttributeProto": [
            ("name", 1, field.TYPE_STRING, one, None, False),
            ("f", 2, field.TYPE_FLOAT, one, None, False),
            ("i", 3, field.TYPE_INT64, one, None, False),
            ("t", 5, field.TYPE_MESSAGE, one, "TensorProto", False),
            ("ints", 8, field.TYPE_INT64, many, None, False),
            ("type", 20, field.TYPE_INT32, one, None, False),
        ],
        "NodeProto": [
            ("input", 1, field.TYPE_STRING, many, None, False),
            ("output", 2, field.TYPE_STRING, many, None, False),
            ("name", 3, field.TYPE_STRING, one, None, False),
            ("op_type", 4, field.TYPE_STRING, one, None, False),
            ("attribute", 5, field.TYPE_MESSAGE, many, "AttributeProto", False),
            ("domain", 7, field.TYPE_STRING, one, None, False),
        ],
        "ValueInfoProto": [("name", 1, field.TYPE_STRING, one, None, False)],
        "GraphProto": [
            ("node", 1, field.TYPE_MESSAGE, many, "NodeProto", False),
            ("initializer", 5, field.TYPE_MESSAGE, many, "TensorProto", False),
            ("output", 12, field.TYPE_MESSAGE, many, "ValueInfoProto", False),
        ],
        "ModelProto": [("graph", 7, field.TYPE_MESSAGE, one, "GraphProto", False)],
    }
    for name, fields in layout.items():
        message = file.message_type.add(name=name)
        for fname, number, kind, label, type_name, packed in fields:
            entry = message.field.add(name=fname, number=number, type=kind, label=label)
            if type_name:
                entry.type_name = f".deid_onnx_subset.{type_name}"
            if packed:
                entry.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"deid_onnx_subset.{name}")
        )
        for name in layout
    }


class _Graph:
    """The nodes of a graph with their producers, consumers and constant values."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.constants: dict[str, Any] = {}  # value name -> its TensorProto (Constant node)
        for node in graph.node:
            if node.op_type == "Constant" and len(node.output) == 1 and not node.domain:
                values = [a for a in node.attribute if a.name == "value" and a.HasField("t")]
                if len(values) == 1:
                    self.constants[node.output[0]] = values[0].t
        for tensor in graph.initializer:
            self.constants[tensor.name] = tensor
        self.users: dict[str, list[Any]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.users[name].append(node)
        self.kept = {value.name for value in graph.output}  # graph outputs stay
        self.dropped: set[int] = set()

    def value(self, name: str) -> Floats | None:
        """A float32 constant's value, or ``None``."""
        tensor = self.constants.get(name)
        if tensor is None or tensor.data_type != _FLOAT:
            return None
        if tensor.raw_data:
            data = np.frombuffer(tensor.raw_data, "<f4").astype(np.float32)
        else:
            data = np.asarray(list(tensor.float_data), np.float32)
        shape = [int(d) for d in tensor.dims]
        if data.size != int(np.prod(shape)):
            return None
        return data.reshape(shape)

    def scalar(self, name: str) -> float | None:
        value = self.value(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def only_user(self, name: str, op_type: str) -> Any | None:
        """The one node using ``name``, where it is an ``op_type`` and ``name`` is no graph
        output."""
        users = self.users.get(name, [])
        if name in self.kept or len(users) != 1 or users[0].op_type != op_type:
            return None
        node = users[0]
        return None if node.domain or id(node) in self.dropped else node

    def set_value(self, name: str, value: Floats) -> None:
        tensor = self.constants[name]
        del tensor.float_data[:]
        del tensor.dims[:]
        tensor.dims.extend(value.shape)
        tensor.raw_data = value.astype("<f4").tobytes()


def _other(node: Any, name: str) -> str | None:
    """The input of a two-input ``node`` that is not ``name``."""
    inputs: list[str] = [str(i) for i in node.input]
    if len(inputs) != 2 or inputs.count(name) != 1:
        return None
    return inputs[1] if inputs[0] == name else inputs[0]


def _fold_affine(g: _Graph, conv: Any, messages: dict[str, Any]) -> bool:
    """``conv -> Mul(a) -> Add(b)`` into ``conv`` (weights ``w * a``, bias ``bias * a + b``)."""
    if conv.domain or len(conv.output) != 1 or not 2 <= len(conv.input) <= 3:
        return False
    out = conv.output[0]
    mul = g.only_user(out, "Mul")
    if mul is None or len(mul.output) != 1:
        return False
    scale_name = _other(mul, out)
    scale = g.scalar(scale_name) if scale_name is not None else None
    add = g.only_user(mul.output[0], "Add")
    if scale is None or add is None or len(add.output) != 1:
        return False
    shift_name = _other(add, mul.output[0])
    shift = g.scalar(shift_name) if shift_name is not None else None
    weights_name = conv.input[1]
    weights = g.value(weights_name)
    if shift is None or weights is None or weights.ndim != 4 or len(g.users[weights_name]) != 1:
        return False
    bias: Floats | None = None
    if len(conv.input) == 3:
        bias = g.value(conv.input[2])
        if bias is None or bias.shape != (weights.shape[0],) or len(g.users[conv.input[2]]) != 1:
            return False
    a, b = np.float32(scale), np.float32(shift)
    g.set_value(weights_name, weights * a)
    if bias is not None:
        g.set_value(conv.input[2], bias * a + b)
    else:
        _add_bias(g, conv, np.full(weights.shape[0], b, np.float32), messages)
    conv.output[0] = add.output[0]
    g.dropped.update((id(mul), id(add)))
    return True


def _fold_into_pointwise(g: _Graph, mul: Any, messages: dict[str, Any]) -> bool:
    """``Mul(a) -> Add(b) -> Conv`` where the convolution is pointwise (1 x 1, no padding, one
    group) into that convolution (weights ``w * a``, bias ``bias + b * sum(w)``): no padded
    border sees the affine, so every output is the same sum."""
    if mul.domain or len(mul.output) != 1 or len(mul.input) != 2:
        return False
    scales = [i for i in mul.input if g.scalar(i) is not None]
    if len(scales) != 1:
        return False
    x = _other(mul, scales[0])
    add = g.only_user(mul.output[0], "Add")
    if x is None or x in g.constants or add is None or len(add.output) != 1:
        return False
    shift_name = _other(add, mul.output[0])
    shift = g.scalar(shift_name) if shift_name is not None else None
    conv = g.only_user(add.output[0], "Conv")
    if shift is None or conv is None or not 2 <= len(conv.input) <= 3:
        return False
    if conv.input[0] != add.output[0] or not _pointwise(conv):
        return False
    weights_name = conv.input[1]
    weights = g.value(weights_name)
    if weights is None or weights.ndim != 4 or weights.shape[2:] != (1, 1):
        return False
    if len(g.users[weights_name]) != 1:
        return False
    bias: Floats | None = None
    if len(conv.input) == 3:
        bias = g.value(conv.input[2])
        if bias is None or bias.shape != (weights.shape[0],) or len(g.users[conv.input[2]]) != 1:
            return False
    a, b = np.float32(g.scalar(scales[0])), np.float32(shift)
    summed = weights.sum(axis=(1, 2, 3), dtype=np.float32)
    g.set_value(weights_name, weights * a)
    if bias is not None:
        g.set_value(conv.input[2], bias + b * summed)
    else:
        _add_bias(g, conv, (b * summed).astype(np.float32), messages)
    conv.input[0] = x
    g.dropped.update((id(mul), id(add)))
    return True


def _pointwise(conv: Any) -> bool:
    """Whether ``conv``'s attributes make it a plain 1 x 1 convolution (no padding, one
    group, no dilation other than 1)."""
    for attribute in conv.attribute:
        name = attribute.name
        if name == "group" and attribute.i != 1:
            return False
        if name == "pads" and any(int(v) != 0 for v in attribute.ints):
            return False
        if name == "kernel_shape" and [int(v) for v in attribute.ints] != [1, 1]:
            return False
        if name == "auto_pad":
            return False
        if name not in ("group", "pads", "kernel_shape", "strides", "dilations"):
            return False
    return True


def _add_bias(g: _Graph, conv: Any, bias: Floats, messages: dict[str, Any]) -> None:
    name = f"{conv.output[0]}.deid_fused_bias"
    tensor = messages["TensorProto"](name=name, data_type=_FLOAT)
    tensor.dims.append(int(bias.shape[0]))
    tensor.raw_data = bias.astype("<f4").tobytes()
    g.graph.initializer.append(tensor)
    g.constants[name] = g.graph.initializer[-1]
    g.users[name].append(conv)
    conv.input.append(name)


def _hard_swish(g: _Graph, add: Any, messages: dict[str, Any]) -> bool:
    """``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6)`` into ``Mul(x, HardSigmoid(x))``."""
    if add.domain or len(add.output) != 1 or len(add.input) != 2:
        return False
    three = [i for i in add.input if g.scalar(i) == 3.0]
    if len(three) != 1:
        return False
    x = _other(add, three[0])
    clip = g.only_user(add.output[0], "Clip")
    if x is None or x in g.constants or clip is None or len(clip.output) != 1:
        return False
    if len(clip.input) != 3 or [g.scalar(i) for i in clip.input[1:]] != [0.0, 6.0]:
        return False
    mul = g.only_user(clip.output[0], "Mul")
    if mul is None or len(mul.output) != 1 or _other(mul, clip.output[0]) != x:
        return False
    div = g.only_user(mul.output[0], "Div")
    if div is None or len(div.output) != 1 or len(div.input) != 2:
        return False
    if div.input[0] != mul.output[0] or g.scalar(div.input[1]) != 6.0:
        return False
    add.op_type = "HardSigmoid"
    del add.input[:]
    add.input.append(x)
    del add.attribute[:]
    for name, value in (("alpha", 1.0 / 6.0), ("beta", 0.5)):
        add.attribute.append(messages["AttributeProto"](name=name, f=value, type=_ATTRIBUTE_FLOAT))
    del mul.input[:]
    mul.input.extend([x, add.output[0]])
    mul.output[0] = div.output[0]
    g.dropped.update((id(clip), id(div)))
    return True


def fuse(model: bytes) -> tuple[bytes, int]:
    """``model`` (an ONNX file's bytes) with the patterns of the module rewritten, and how
    many were."""
    messages = _messages()
    proto = messages["ModelProto"]()
    proto.ParseFromString(model)
    g = _Graph(proto.graph)
    count = 0
    for node in list(proto.graph.node):
        if id(node) in g.dropped:
            continue
        if node.op_type == "Conv":
            count += _fold_affine(g, node, messages)
    g = _rebuilt(g)
    for node in list(proto.graph.node):
        if id(node) not in g.dropped and node.op_type == "Add":
            count += _hard_swish(g, node, messages)
    g = _rebuilt(g)
    for node in list(proto.graph.node):
        if id(node) not in g.dropped and node.op_type == "Mul":
            count += _fold_into_pointwise(g, node, messages)
    _rebuilt(g)
    return proto.SerializeToString(), count


def _rebuilt(g: _Graph) -> _Graph:
    """``g``'s graph without its dropped nodes, indexed again."""
    kept = [node for node in g.graph.node if id(node) not in g.dropped]
    copies = [type(node)() for node in kept]
    for copy, node in zip(copies, kept, strict=True):
        copy.CopyFrom(node)
    del g.graph.node[:]
    g.graph.node.extend(copies)
    return _Graph(g.graph)
