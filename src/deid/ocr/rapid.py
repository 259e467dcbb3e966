"""RapidOcr: the PP-OCRv4 text detector (and optionally its recogniser) run with onnxruntime.

The ONNX models are the ones shipped inside the ``rapidocr-onnxruntime`` 1.4.4 wheel, installed
without its dependencies (it requires the GUI ``opencv-python``, which clashes with the headless
one)::

    pip install 'deid-dicom[ocr]'
    pip install --no-deps rapidocr-onnxruntime==1.4.4

Only the model files are used: the package itself is never imported. Pre- and post-processing
are our own:

Detection (DB, "differentiable binarisation")
    The image is framed by ``border`` pixels of replicated edge (text touching the edge is
    otherwise often missed), resized so that its longer side is at most ``max_side`` and both
    sides are multiples of 32, scaled to [-1, 1], and run through the detector, which returns a
    text probability per pixel. Pixels above ``threshold`` are joined (a small dilation) into
    connected regions; a region whose mean probability is below ``box_threshold`` (0.25) is
    dropped. Every region already has pixels above ``threshold`` (0.3), so this only removes
    specks whose dilation outweighs them; there is no cut on a recognition score (a missed box
    is PHI left in the image, a spare one only blanks a little more). DB predicts a *shrunk*
    text kernel, so each region's box is grown back by the model's unclip distance (area x 1.6 /
    perimeter), mapped to the input image's pixels with outward rounding, and padded by ``pad``
    pixels so that it covers all the ink.

    A crop of a larger image (:meth:`RapidOcr.detect_crop`, as the pixel pass reads the
    pre-screen's places) gets the replicated border only on its sides that are the image's
    edges; on its inner sides the caller's margin is the image's own context. It is framed up
    to whole multiples of 32 and read at its size, never resampled: a small place costs the
    detector its own pixels, not a border two or three times their number.

    A box taller than ``max_box_height`` of the image (and taller than ``keep_height`` pixels,
    which are always kept) is dropped: on text-free CT the detector sometimes returns one box
    around the whole body.

Recognition (``recognize=True``)
    Each box (before padding) is cut out, resized to 48 pixels high, scaled to [-1, 1] and run
    through the CRNN recogniser in batches; the output is decoded with greedy CTC over the
    character list stored in the model's own metadata (``character``), and the box's
    ``confidence`` becomes the mean probability of the characters read. No box is dropped for a
    low recognition score.

The detector is loaded with its spelled-out activations fused (:mod:`deid.ocr._fuse`: each
hard-swish one node instead of four, each learnable affine folded into a convolution next
to it), after checking on a probe image that the rewritten model gives the original's
probabilities; ``fuse=False`` runs the model as shipped.

Threads: an instance holds its onnxruntime sessions and no other mutable state, and
onnxruntime allows concurrent ``run`` calls on one session, so one instance may be shared by
threads; ``threads`` sets each session's intra-op thread count. The default is 1: the pixel
pass mostly reads small crops, where splitting one run over threads gains little, and objects
are de-identified in parallel already (the runner's worker processes, the server's threads),
which extra intra-op threads only oversubscribe. Raise it for the latency of single large
frames on an otherwise idle machine. Graph optimisation is onnxruntime's default (all).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from deid.errors import MissingDependencyError
from deid.ocr._packages import has_module, model_dir
from deid.ocr.base import TextBox
from deid.ocr.prescreen import label_type

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["RapidOcr"]

#: The wheel that carries the models, and the files used from it.
MODEL_PACKAGE = "rapidocr_onnxruntime"
MODEL_PIN = "rapidocr-onnxruntime==1.4.4"
DETECTOR_FILE = "ch_PP-OCRv4_det_infer.onnx"
RECOGNIZER_FILE = "ch_PP-OCRv4_rec_infer.onnx"

_WHAT = (
    "the rapidocr OCR engine (onnxruntime, OpenCV and the PP-OCRv4 models; install the models "
    f"with: pip install --no-deps {MODEL_PIN})"
)

#: DB's unclip ratio (the factor the training shrank text regions by).
_UNCLIP_RATIO = 1.6
#: Recogniser input height, and the narrowest input it is given (the model's training width).
_REC_HEIGHT = 48
_REC_MIN_WIDTH = 320
_REC_BATCH = 8


def _model_dir() -> Path | None:
    """The ``models`` folder of the installed ``rapidocr_onnxruntime`` wheel, without importing
    the package (its imports need GUI OpenCV, yaml, shapely, ...)."""
    return model_dir(MODEL_PACKAGE, DETECTOR_FILE, RECOGNIZER_FILE)


def _has_module(name: str) -> bool:
    return has_module(name)


class RapidOcr:
    """PP-OCRv4 detection (and optionally recognition) with onnxruntime; see the module.

    recognize
        Also read each box (fills ``TextBox.text``); ``recognizes`` is this value.
    max_side
        The longer side the image is shrunk to, at most, before detection (``None``: never
        shrink). Boxes are always returned in the input image's pixels.
    scale
        A factor applied first (``0.5`` detects at half size); ``max_side`` still applies.
    threshold
        The text probability a pixel needs to be part of a region.
    box_threshold
        The mean probability a region (dilated) needs to be kept (``0``: keep every region).
    pad
        Pixels added on every side of each box, in the input image.
    max_box_height, keep_height
        Drop a box taller than ``max_box_height`` x the image height, unless it is at most
        ``keep_height`` pixels tall.
    threads
        onnxruntime intra-op threads per session (see the module).
    border
        Pixels of replicated edge added around the image before detection (the detector
        misses text that touches the image's edge without it).
    fuse
        Run the detector with its spelled-out activations fused (:mod:`deid.ocr._fuse`: the
        same function, a fifth to a third faster), where the rewritten model gives the
        original's probabilities on a probe image (``fused`` says whether it does).
    """

    name: ClassVar[str] = "rapidocr"
    #: Detection is local: a crop with some context around its text gets the boxes the whole
    #: image gets there (the pixel pass may read only the places the pre-screen flags).
    reads_crops: ClassVar[bool] = True

    def __init__(
        self,
        *,
        recognize: bool = False,
        max_side: int | None = 2048,
        scale: float = 1.0,
        threshold: float = 0.3,
        box_threshold: float = 0.25,
        pad: int = 3,
        max_box_height: float = 0.10,
        keep_height: int = 64,
        threads: int = 1,
        border: int = 16,
        fuse: bool = True,
    ) -> None:
        if max_side is not None and max_side < 32:
            raise ValueError("max_side must be at least 32")
        if not 0.0 < scale <= 4.0:
            raise ValueError("scale must be in (0, 4]")
        if not 0.0 < threshold < 1.0 or not 0.0 <= box_threshold < 1.0:
            raise ValueError("threshold must be in (0, 1) and box_threshold in [0, 1)")
        if min(pad, keep_height, border) < 0 or not 0.0 < max_box_height <= 1.0 or threads < 1:
            raise ValueError(
                "pad, keep_height, border >= 0; max_box_height in (0, 1]; threads >= 1"
            )
        try:
            import cv2
            import onnxruntime
        except ImportError as exc:
            raise MissingDependencyError(_WHAT, "ocr") from exc
        folder = _model_dir()
        if folder is None:
            raise MissingDependencyError(_WHAT, "ocr")
        self._cv2: Any = cv2
        self.recognizes: bool = recognize
        self.max_side = max_side
        self.scale = scale
        self.threshold = threshold
        self.box_threshold = box_threshold
        self.pad = pad
        self.max_box_height = max_box_height
        self.keep_height = keep_height
        self.threads = threads
        self.border = border

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]

        def session(model: bytes) -> Any:
            return onnxruntime.InferenceSession(model, sess_options=options, providers=providers)

        model = (folder / DETECTOR_FILE).read_bytes()
        fused = _fused(model, session) if fuse else None
        #: Whether the detector runs with its activations fused (:mod:`deid.ocr._fuse`).
        self.fused: bool = fused is not None
        self._detector: Any = fused if fused is not None else session(model)
        self._det_input: str = self._detector.get_inputs()[0].name
        self._recognizer: Any = None
        self._characters: list[str] = []
        if recognize:
            self._recognizer = onnxruntime.InferenceSession(
                str(folder / RECOGNIZER_FILE), sess_options=options, providers=providers
            )
            self._rec_input = self._recognizer.get_inputs()[0].name
            self._characters = _characters(self._recognizer)

    def __repr__(self) -> str:
        return (
            f"RapidOcr(recognize={self.recognizes}, max_side={self.max_side}, "
            f"scale={self.scale}, pad={self.pad})"
        )

    @classmethod
    def is_available(cls) -> bool:
        """Whether onnxruntime, OpenCV and the model files are installed."""
        return _has_module("onnxruntime") and _has_module("cv2") and _model_dir() is not None

    # -- detection -------------------------------------------------------------------------

    def detect(self, image: npt.NDArray[np.uint8]) -> list[TextBox]:
        """The text boxes of ``image`` (``uint8``, grey or RGB), in its pixels."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[list[TextBox]]:
        """:meth:`detect` on several images; images of one size go through the detector as
        one batch (cine frames), which is faster than one run each. Same boxes as one by one."""
        prepared = [self._prepare(image) for image in images]
        results: list[list[TextBox] | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, (tensor, _) in enumerate(prepared):
            by_shape.setdefault(tuple(tensor.shape), []).append(index)
        for indices in by_shape.values():
            batch = np.concatenate([prepared[i][0] for i in indices], axis=0)
            maps = self._detector.run(None, {self._det_input: batch})[0]
            for slot, index in enumerate(indices):
                results[index] = self._finish(maps[slot, 0], prepared[index][1])
        return [boxes if boxes is not None else [] for boxes in results]

    def detect_crop(
        self, crop: npt.NDArray[np.uint8], outer: tuple[bool, bool, bool, bool]
    ) -> list[TextBox]:
        """:meth:`detect` on ``crop``, a part of a larger image whose sides ``outer``
        (left, top, right, bottom) are that image's edges: the replicated border goes only
        on those sides (an inner side has the image's own pixels around the text: the
        caller's margin), and the crop is read at its size, framed up to whole multiples of
        32 (replicated on the outer sides, else on the right and bottom), never resampled.
        Every side outer, or a crop too large to read unresampled: :meth:`detect`."""
        return self.detect_crops([(crop, outer)])[0]

    def detect_crops(
        self, crops: Sequence[tuple[npt.NDArray[np.uint8], tuple[bool, bool, bool, bool]]]
    ) -> list[list[TextBox]]:
        """:meth:`detect_crop` on several ``(crop, outer)``; crops framed to one size go
        through the detector as one batch (a frame's small places: a run has a fixed cost
        on top of its pixels). The same boxes as one by one."""
        results: list[list[TextBox]] = [[] for _ in crops]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        prepared: dict[int, Any] = {}
        for index, (crop, outer) in enumerate(crops):
            rows, columns = int(crop.shape[0]), int(crop.shape[1])
            sides = self._sides(rows, columns, outer)
            if sides is None:
                results[index] = self.detect(crop)
                continue
            prepared[index] = self._prepare(crop, sides)
            by_shape.setdefault(tuple(prepared[index][0].shape), []).append(index)
        for indices in by_shape.values():
            if len(indices) == 1:
                batch = prepared[indices[0]][0]
            else:
                batch = np.concatenate([prepared[i][0] for i in indices], axis=0)
            maps = self._detector.run(None, {self._det_input: batch})[0]
            for slot, index in enumerate(indices):
                results[index] = self._finish(maps[slot, 0], prepared[index][1])
        return results

    def _sides(
        self, rows: int, columns: int, outer: tuple[bool, bool, bool, bool]
    ) -> tuple[int, int, int, int] | None:
        """The border (left, top, right, bottom) that frames a ``rows`` x ``columns`` crop
        with ``outer`` sides to whole multiples of 32; ``None`` where :meth:`detect` reads
        it (every side outer, a scale, or over ``max_side``)."""
        if all(outer) or self.scale != 1.0:
            return None
        edge = self.border
        framed = []
        for size, first, last in ((columns, outer[0], outer[2]), (rows, outer[1], outer[3])):
            a, b = edge * first, edge * last
            extra = -(-(size + a + b) // 32) * 32 - (size + a + b)
            if first and not last:
                a += extra
            else:
                b += extra
            framed.append((a, b))
        (left, right), (top, bottom) = framed
        if self.max_side is not None and max(rows + top + bottom, columns + left + right) > (
            self.max_side
        ):
            return None
        return left, top, right, bottom

    def _prepare(
        self, image: npt.NDArray[np.uint8], sides: tuple[int, int, int, int] | None = None
    ) -> tuple[
        npt.NDArray[np.float32], tuple[npt.NDArray[np.uint8], int, int, int, int, tuple[int, ...]]
    ]:
        """The detector's input for one image, and what :meth:`_finish` needs to map back.
        ``sides``: the border on each side (left, top, right, bottom), the framed size
        read as it is (default: ``border`` on every side, resized to the model's size)."""
        cv2 = self._cv2
        bgr = _as_bgr(image, cv2)
        rows, columns = bgr.shape[:2]
        if sides is not None:
            left, top, right, bottom = sides
            framed = cv2.copyMakeBorder(bgr, top, bottom, left, right, cv2.BORDER_REPLICATE)
            height, width = framed.shape[:2]
            return _normalise(framed), (bgr, rows, columns, height, width, sides)
        edge = self.border
        framed = cv2.copyMakeBorder(bgr, edge, edge, edge, edge, cv2.BORDER_REPLICATE)
        height, width = self._model_size(rows + 2 * edge, columns + 2 * edge)
        shrink = height <= rows + 2 * edge and width <= columns + 2 * edge
        method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        resized = cv2.resize(framed, (width, height), interpolation=method)
        return _normalise(resized), (bgr, rows, columns, height, width, (edge,) * 4)

    def _finish(
        self,
        probability: npt.NDArray[np.float32],
        meta: tuple[npt.NDArray[np.uint8], int, int, int, int, tuple[int, ...]],
    ) -> list[TextBox]:
        bgr, rows, columns, height, width, (left_edge, top_edge, right_edge, bottom_edge) = meta
        regions = self._regions(probability)
        factor_x = (columns + left_edge + right_edge) / width
        factor_y = (rows + top_edge + bottom_edge) / height
        limit = max(self.keep_height, self.max_box_height * rows)
        boxes: list[TextBox] = []
        for left, top, right, bottom, score in regions:
            x0 = max(0, math.floor(left * factor_x) - left_edge)
            y0 = max(0, math.floor(top * factor_y) - top_edge)
            x1 = min(columns, math.ceil(right * factor_x) - left_edge)
            y1 = min(rows, math.ceil(bottom * factor_y) - top_edge)
            if x1 <= x0 or y1 <= y0 or (y1 - y0) > limit:
                continue
            boxes.append(TextBox(x0, y0, x1 - x0, y1 - y0, score))
        if self.recognizes and boxes:
            boxes = self._read(bgr, boxes)
        return [box.padded(self.pad, rows, columns) for box in boxes]

    def crop_size(
        self, rows: int, columns: int, outer: tuple[bool, bool, bool, bool] | None = None
    ) -> tuple[int, int]:
        """The smallest size of at least ``rows`` x ``columns`` that detection reads without
        resampling (framed by the border, whole multiples of 32), where there is one: at
        ``scale`` 1 and within ``max_side``; else ``(rows, columns)``. ``outer``: the sides
        that are the image's edges, for :meth:`detect_crop` (the border only there);
        default every side (:meth:`detect`)."""
        sides = (True,) * 4 if outer is None else outer
        edge_h = self.border * (sides[1] + sides[3])
        edge_w = self.border * (sides[0] + sides[2])
        height = -(-(rows + edge_h) // 32) * 32
        width = -(-(columns + edge_w) // 32) * 32
        if self.scale != 1.0 or (self.max_side is not None and max(height, width) > self.max_side):
            return rows, columns
        return height - edge_h, width - edge_w

    def _model_size(self, rows: int, columns: int) -> tuple[int, int]:
        factor = self.scale
        if self.max_side is not None and max(rows, columns) * factor > self.max_side:
            factor = self.max_side / max(rows, columns)
        height = max(32, round(rows * factor / 32) * 32)
        width = max(32, round(columns * factor / 32) * 32)
        return height, width

    def _regions(
        self, probability: npt.NDArray[np.float32]
    ) -> list[tuple[float, float, float, float, float]]:
        """Boxes (left, top, right, bottom in model pixels, as floats) and mean scores."""
        cv2 = self._cv2
        mask = (probability > self.threshold).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            mask, connectivity=8, ltype=label_type(cv2, mask)
        )
        found: list[tuple[float, float, float, float, float]] = []
        if count <= 1:
            return found
        sums = np.bincount(labels.ravel(), weights=probability.ravel(), minlength=count)
        for label in range(1, count):
            left, top, width, height, area = (int(v) for v in stats[label])
            if min(width, height) < 2:
                continue
            score = float(sums[label] / area)
            if score < self.box_threshold:
                continue
            grow = width * height * _UNCLIP_RATIO / (2.0 * (width + height))
            found.append((left - grow, top - grow, left + width + grow, top + height + grow, score))
        return found

    # -- recognition -----------------------------------------------------------------------

    def _read(self, bgr: npt.NDArray[np.uint8], boxes: Sequence[TextBox]) -> list[TextBox]:
        crops = [bgr[b.top : b.bottom, b.left : b.right] for b in boxes]
        ratios = [c.shape[1] / c.shape[0] for c in crops]
        order = sorted(range(len(crops)), key=lambda i: ratios[i])
        read: dict[int, tuple[str, float]] = {}
        for start in range(0, len(order), _REC_BATCH):
            batch = order[start : start + _REC_BATCH]
            widest = max(_REC_MIN_WIDTH, *(math.ceil(_REC_HEIGHT * ratios[i]) for i in batch))
            tensor = np.zeros((len(batch), 3, _REC_HEIGHT, widest), np.float32)
            for row, index in enumerate(batch):
                width = max(1, min(widest, math.ceil(_REC_HEIGHT * ratios[index])))
                line = self._cv2.resize(crops[index], (width, _REC_HEIGHT))
                tensor[row, :, :, :width] = _normalise(line)[0]
            output = self._recognizer.run(None, {self._rec_input: tensor})[0]
            for row, index in enumerate(batch):
                read[index] = _ctc_greedy(output[row], self._characters)
        return [
            TextBox(b.left, b.top, b.width, b.height, read[i][1], read[i][0])
            for i, b in enumerate(boxes)
        ]


#: How far the fused detector's probabilities may lie from the original's on the probe (they
#: differ by float32 rounding: up to ~1e-4 on real frames; a broken rewrite, by far more).
_FUSED_TOLERANCE = 1e-3


def _probe() -> npt.NDArray[np.float32]:
    """A fixed detector input (1 x 3 x 96 x 160): noise, with bright bars of text's size."""
    rng = np.random.default_rng(20261207)
    image = rng.integers(0, 60, (96, 160), dtype=np.uint8)
    for row in (20, 52):
        for column in range(16, 140, 12):
            image[row : row + 14, column : column + 3] = 230
            image[row : row + 3, column : column + 8] = 230
    bgr = np.repeat(image[:, :, np.newaxis], 3, axis=2)
    return _normalise(bgr)


def _fused(model: bytes, session: Any) -> Any:
    """A session of ``model`` with its activations fused, where the rewrite applies and its
    probabilities on :func:`_probe` are the original's (within :data:`_FUSED_TOLERANCE`);
    else ``None`` (the caller runs the original)."""
    try:
        from deid.ocr._fuse import fuse

        rewritten, count = fuse(model)
    except Exception:  # protobuf missing or a model it cannot read: run the original
        return None
    if not count:
        return None
    fused, original = session(rewritten), session(model)
    probe = _probe()
    name = original.get_inputs()[0].name
    expected = original.run(None, {name: probe})[0]
    got = fused.run(None, {fused.get_inputs()[0].name: probe})[0]
    if got.shape != expected.shape or not np.all(np.abs(got - expected) <= _FUSED_TOLERANCE):
        return None
    return fused


def _characters(session: Any) -> list[str]:
    """The recogniser's classes: CTC blank, the model's character list, then a space."""
    listed = session.get_modelmeta().custom_metadata_map.get("character")
    if not listed:
        raise MissingDependencyError(f"{_WHAT} (the recognition model lists no characters)", "ocr")
    characters = ["", *listed.splitlines(), " "]
    classes = session.get_outputs()[0].shape[-1]
    if isinstance(classes, int) and classes != len(characters):
        raise MissingDependencyError(_WHAT + " (unexpected recognition model)", "ocr")
    return characters


def _ctc_greedy(scores: npt.NDArray[np.float32], characters: Sequence[str]) -> tuple[str, float]:
    """Greedy CTC: best class per step, repeats collapsed, blanks (class 0) dropped."""
    best = scores.argmax(axis=1)
    probability = scores.max(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join(characters[int(i)] for i in best[keep])
    return text, float(probability[keep].mean())


def _as_bgr(image: npt.NDArray[np.uint8], cv2: Any) -> npt.NDArray[np.uint8]:
    """A 3-channel BGR copy of a grey or RGB ``uint8`` image (the models were trained on BGR)."""
    if image.dtype != np.uint8:
        raise TypeError("OCR engines take uint8 images")
    code = {2: cv2.COLOR_GRAY2BGR, 3: cv2.COLOR_RGB2BGR}.get(image.ndim)
    if code is not None and (image.ndim == 2 or image.shape[2] == 3):
        converted: npt.NDArray[np.uint8] = cv2.cvtColor(image, code)
        return converted
    raise ValueError("OCR engines take (rows, columns) or (rows, columns, 3) images")


def _normalise(bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """HWC uint8 -> 1xCxHxW float32 in [-1, 1] (the models' (x / 255 - 0.5) / 0.5)."""
    scaled = bgr.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)[np.newaxis])
