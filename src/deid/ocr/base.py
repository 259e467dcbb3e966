"""The OCR Protocol and its result type."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class TextBox:
    """One region of text in an image, in pixels of the image given to the engine.

    ``left``/``top`` are the first column/row inside the box, ``width``/``height`` its size
    (so the box covers rows ``top .. top+height-1``). ``text`` is what was read, or ``None``
    when the engine only detects. ``text`` may be PHI: it is hidden from ``repr`` and never
    logged or written to an audit record.
    """

    left: int
    top: int
    width: int
    height: int
    confidence: float = 1.0
    text: str | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError("a TextBox needs a positive width and height")
        if self.left < 0 or self.top < 0:
            raise ValueError("a TextBox starts inside the image (left, top >= 0)")

    def __repr__(self) -> str:
        read = "" if self.text is None else ", text=<hidden>"
        return (
            f"TextBox(left={self.left}, top={self.top}, width={self.width}, "
            f"height={self.height}, confidence={self.confidence:.3f}{read})"
        )

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.top + self.height

    def padded(self, pad: int, rows: int, columns: int) -> TextBox:
        """This box grown by ``pad`` pixels on each side, clipped to a ``rows`` x ``columns``
        image."""
        left = max(0, self.left - pad)
        top = max(0, self.top - pad)
        right = min(columns, self.right + pad)
        bottom = min(rows, self.bottom + pad)
        return TextBox(left, top, right - left, bottom - top, self.confidence, self.text)

    def scaled(self, factor: float) -> TextBox:
        """This box in an image ``factor`` times larger (outward rounding: never smaller)."""
        left = math.floor(self.left * factor)
        top = math.floor(self.top * factor)
        right = math.ceil(self.right * factor)
        bottom = math.ceil(self.bottom * factor)
        return TextBox(
            left, top, max(1, right - left), max(1, bottom - top), self.confidence, self.text
        )


@runtime_checkable
class OcrEngine(Protocol):
    """Finds text in an 8-bit image.

    ``image`` is a ``uint8`` array, ``(rows, columns)`` for grey or ``(rows, columns, 3)`` for
    RGB. The result lists every text region found, in the image's pixel coordinates. An engine
    that only detects returns ``text=None``; ``recognizes`` says which it is.
    """

    name: ClassVar[str]

    @property
    def recognizes(self) -> bool:
        """Whether :meth:`detect` fills ``TextBox.text`` (a class or an instance attribute)."""
        ...

    def detect(self, image: npt.NDArray[np.uint8]) -> list[TextBox]:
        """Return the text regions of ``image``."""
        ...
