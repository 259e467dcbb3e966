"""StaticOcr: an engine whose boxes are given up front."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from deid.ocr.base import TextBox

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class StaticOcr:
    """An OCR engine that returns boxes given up front (tests, or boxes known from elsewhere).

    Give exactly one of:

    boxes
        The boxes of every image it is called on.
    per_call
        One box list per call: the ``n``-th call to :meth:`detect` gets ``per_call[n]``, and
        calls past the end get no boxes.
    func
        A callable given the image, returning its boxes.

    Boxes are clipped to the image; a box wholly outside it is dropped. ``calls`` counts the
    calls to :meth:`detect`.
    """

    name: ClassVar[str] = "static"
    recognizes: ClassVar[bool] = True

    def __init__(
        self,
        boxes: Iterable[TextBox] = (),
        *,
        per_call: Sequence[Sequence[TextBox]] | None = None,
        func: Callable[[npt.NDArray[np.uint8]], Iterable[TextBox]] | None = None,
    ) -> None:
        self._fixed = list(boxes)
        given = sum((bool(self._fixed), per_call is not None, func is not None))
        if given > 1:
            raise TypeError("StaticOcr takes one of boxes, per_call or func")
        self._per_call = [list(b) for b in per_call] if per_call is not None else None
        self._func = func
        for box in self._fixed + [b for call in self._per_call or [] for b in call]:
            if not isinstance(box, TextBox):
                raise TypeError("StaticOcr boxes must be TextBox objects")
        self.calls = 0

    def detect(self, image: npt.NDArray[np.uint8]) -> list[TextBox]:
        """The boxes for this call (see the class), clipped to the image."""
        index = self.calls
        self.calls += 1
        if self._func is not None:
            found = list(self._func(image))
        elif self._per_call is not None:
            found = self._per_call[index] if index < len(self._per_call) else []
        else:
            found = self._fixed
        rows, columns = int(image.shape[0]), int(image.shape[1])
        return [
            box.padded(0, rows, columns) for box in found if box.left < columns and box.top < rows
        ]
