"""Where each element's value sits in an encoded file: for naming a raw-byte hit."""

from __future__ import annotations

import io

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from deid.tags import element_vr, format_tag, stored

#: (start, end, location such as ``(0008,1115)[0]>(0008,1030)``, VR)
Span = tuple[int, int, str, str]


def element_spans(encoded: bytes) -> list[Span]:
    """(start, end, location, VR) of every element value in ``encoded`` (pixels excluded).

    Nested offsets are relative to the value of the sequence that holds them when pydicom
    parses that sequence from its bytes, and absolute when it parsed it while reading (an
    undefined length): both are brought to offsets in ``encoded``.
    """
    try:
        ds = dcmread(io.BytesIO(encoded), stop_before_pixels=True, force=True)
    except Exception:  # unparseable output: every hit stays a hit
        return []
    spans: list[Span] = []
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _spans(file_meta, 0, "", spans)
    _spans(ds, 0, "", spans)
    return spans


def _spans(ds: Dataset, base: int, path: str, out: list[Span]) -> None:
    for tag in list(ds.keys()):
        held = stored(ds, tag)
        vr = element_vr(ds, int(tag))
        location = f"{path}{format_tag(int(tag))}"
        if held is None:
            continue
        if not isinstance(held, RawDataElement):
            # A sequence parsed while reading (undefined length): its items' offsets are in
            # the same frame as this data set's.
            if vr == "SQ":
                for index, item in enumerate(held.value or ()):
                    _spans(item, base, f"{location}[{index}]>", out)
            continue
        if held.value is None:
            continue
        start = base + held.value_tell
        out.append((start, start + len(held.value), location, vr))
        if vr == "SQ":
            try:
                items = ds[tag].value or ()
            except Exception:
                continue
            for index, item in enumerate(items):
                _spans(item, start, f"{location}[{index}]>", out)
