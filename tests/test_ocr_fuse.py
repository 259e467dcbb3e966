"""The detector's activations fused (deid.ocr._fuse): which patterns are rewritten, and that
RapidOcr's fused detector finds what the original finds (skipped without the models)."""

from __future__ import annotations

import collections
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from deid.ocr import _fuse
from deid.ocr.rapid import RapidOcr

needs_models = pytest.mark.skipif(
    not RapidOcr.is_available(), reason="RapidOcr needs the ocr extra and the models"
)
M = _fuse._messages()


def constant(name: str, value: Any) -> Any:
    array = np.asarray(value, np.float32)
    node = M["NodeProto"](op_type="Constant", output=[name])
    tensor = M["TensorProto"](data_type=1, raw_data=array.astype("<f4").tobytes())
    tensor.dims.extend(array.shape)
    node.attribute.append(M["AttributeProto"](name="value", t=tensor, type=4))
    return node


def node(op: str, inputs: list[str], output: str, **ints: list[int]) -> Any:
    made = M["NodeProto"](op_type=op, input=inputs, output=[output])
    for name, values in ints.items():
        made.attribute.append(M["AttributeProto"](name=name, ints=values, type=7))
    return made


def model(nodes: list[Any], outputs: list[str]) -> bytes:
    proto = M["ModelProto"]()
    proto.graph.node.extend(nodes)
    for name in outputs:
        proto.graph.output.append(M["ValueInfoProto"](name=name))
    return bytes(proto.SerializeToString())


def block(prefix: str = "") -> list[Any]:
    """Conv -> affine -> hard-swish -> affine -> pointwise Conv, as the detector spells it."""
    p = prefix
    return [
        constant(f"{p}w", np.full((2, 1, 3, 3), 0.5)),
        constant(f"{p}a", 2.0),
        constant(f"{p}b", 0.25),
        constant(f"{p}three", 3.0),
        constant(f"{p}zero", 0.0),
        constant(f"{p}six", 6.0),
        constant(f"{p}a2", 0.5),
        constant(f"{p}b2", -1.0),
        constant(f"{p}w2", np.arange(4).reshape(2, 2, 1, 1)),
        node("Conv", ["x", f"{p}w"], f"{p}c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Mul", [f"{p}a", f"{p}c"], f"{p}m"),
        node("Add", [f"{p}m", f"{p}b"], f"{p}y"),
        node("Add", [f"{p}y", f"{p}three"], f"{p}y3"),
        node("Clip", [f"{p}y3", f"{p}zero", f"{p}six"], f"{p}cl"),
        node("Mul", [f"{p}y", f"{p}cl"], f"{p}ym"),
        node("Div", [f"{p}ym", f"{p}six"], f"{p}hs"),
        node("Mul", [f"{p}a2", f"{p}hs"], f"{p}m2"),
        node("Add", [f"{p}m2", f"{p}b2"], f"{p}y2"),
        node("Conv", [f"{p}y2", f"{p}w2"], f"{p}out", kernel_shape=[1, 1], pads=[0, 0, 0, 0]),
    ]


def parsed(data: bytes) -> tuple[Any, dict[str, Any]]:
    proto = M["ModelProto"]()
    proto.ParseFromString(data)
    values = {}
    for made in proto.graph.node:
        if made.op_type == "Constant":
            tensor = made.attribute[0].t
            values[made.output[0]] = np.frombuffer(tensor.raw_data, "<f4").reshape(
                list(tensor.dims)
            )
    for tensor in proto.graph.initializer:
        values[tensor.name] = np.frombuffer(tensor.raw_data, "<f4").reshape(list(tensor.dims))
    return proto.graph, values


def ops(graph: Any) -> list[str]:
    return [n.op_type for n in graph.node if n.op_type != "Constant"]


def test_the_three_patterns_are_rewritten_into_the_same_function() -> None:
    fused, count = _fuse.fuse(model(block(), ["out"]))
    graph, values = parsed(fused)
    assert count == 3
    assert ops(graph) == ["Conv", "HardSigmoid", "Mul", "Conv"]
    first, hard, mul, second = (n for n in graph.node if n.op_type != "Constant")
    # the first affine in the first convolution: w * 2, bias 0.25
    assert np.array_equal(values[first.input[1]], np.full((2, 1, 3, 3), 1.0, np.float32))
    assert np.array_equal(values[first.input[2]], np.full(2, 0.25, np.float32))
    assert list(first.output) == ["y"]
    # hard-swish: y * HardSigmoid(y; 1/6, 1/2), with the Div's output name
    assert list(hard.input) == ["y"]
    assert {a.name: a.f for a in hard.attribute} == pytest.approx({"alpha": 1 / 6, "beta": 0.5})
    assert list(mul.input) == ["y", hard.output[0]] and list(mul.output) == ["hs"]
    # the second affine in the pointwise convolution: w2 * 0.5, bias -1 * sum(w2) per output
    assert list(second.input[:1]) == ["hs"]
    w2 = np.arange(4, dtype=np.float32).reshape(2, 2, 1, 1)
    assert np.array_equal(values[second.input[1]], w2 * 0.5)
    assert np.array_equal(values[second.input[2]], np.array([-1.0, -5.0], np.float32))
    assert list(second.output) == ["out"]


@pytest.mark.parametrize(
    ("change", "left"),
    [
        # the convolution's output is also a graph output: its affine stays
        ("output c", ["Conv", "Mul", "Add", "HardSigmoid", "Mul", "Conv"]),
        # the clip's bounds are not 0..6: no hard-swish
        ("clip", ["Conv", "Add", "Clip", "Mul", "Div", "Conv"]),
        # a padded 3 x 3 convolution after the second affine: its border would see it
        ("padded", ["Conv", "HardSigmoid", "Mul", "Mul", "Add", "Conv"]),
        # the scale is a vector, not a scalar: the first affine stays
        ("vector", ["Conv", "Mul", "Add", "HardSigmoid", "Mul", "Conv"]),
    ],
)
def test_a_pattern_that_is_not_exactly_the_detectors_is_left_alone(
    change: str, left: list[str]
) -> None:
    nodes = block()
    outputs = ["out"]
    if change == "output c":
        outputs.append("c")
    if change == "clip":
        nodes[5] = constant("six", 5.0)
        nodes.insert(6, constant("six_div", 6.0))
        nodes[-4].input[1] = "six_div"
    if change == "padded":
        nodes[8] = constant("w2", np.ones((2, 2, 3, 3)))
        nodes[-1] = node("Conv", ["y2", "w2"], "out", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    if change == "vector":
        nodes[1] = constant("a", [2.0, 3.0])
    fused, _ = _fuse.fuse(model(nodes, outputs))
    assert ops(parsed(fused)[0]) == left


@needs_models
def test_the_fused_detector_finds_what_the_original_finds(textimages: ModuleType) -> None:
    fused, original = RapidOcr(), RapidOcr(fuse=False)
    assert (fused.fused, original.fused) == (True, False)

    def same(a: list[Any], b: list[Any]) -> bool:
        # the same boxes; confidences (mean probabilities) within float32 rounding
        where = [(x.left, x.top, x.width, x.height) for x in a]
        assert where == [(x.left, x.top, x.width, x.height) for x in b]
        return all(abs(x.confidence - y.confidence) < 1e-3 for x, y in zip(a, b, strict=True))

    for kind, seed in [("CT", 3), ("DX", 4), ("US", 5), ("MONO1", 6)]:
        image = textimages.make(kind, seed, scale=0.25).image
        assert same(fused.detect(image), original.detect(image))
        crop = image[: image.shape[0] // 3, : image.shape[1] // 2]
        outer = (True, True, False, False)
        assert same(fused.detect_crop(crop, outer), original.detect_crop(crop, outer))


@needs_models
def test_the_fused_graph_has_no_spelled_out_activation_left() -> None:
    from deid.ocr.rapid import DETECTOR_FILE, _model_dir

    folder = _model_dir()
    assert folder is not None
    fused, count = _fuse.fuse((folder / DETECTOR_FILE).read_bytes())
    counts = collections.Counter(ops(parsed(fused)[0]))
    assert count == 62
    assert (counts["Clip"], counts["Div"], counts["HardSigmoid"]) == (0, 0, 34)


@needs_models
def test_a_rewrite_that_changes_the_probabilities_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deid.ocr import rapid

    monkeypatch.setattr(rapid, "_FUSED_TOLERANCE", -1.0)  # nothing is close enough
    assert RapidOcr().fused is False

    def broken(model: bytes) -> tuple[bytes, int]:
        raise ValueError("unreadable")

    monkeypatch.setattr(_fuse, "fuse", broken)
    monkeypatch.setattr(rapid, "_FUSED_TOLERANCE", 1e-3)
    assert RapidOcr().fused is False
