"""The identifiers of one object, collected once before anything changes.

:func:`collect` walks a data set (every sequence depth, and the file meta) and gathers the
values that identify the patient or the visit: names and their parts, IDs, dates, institution,
address and phone. Later steps use them to clean free text (:mod:`deid.descriptors`) and to
prove that none of them survived (:mod:`deid.verify`).

The values are PHI: an :class:`Identifier` never shows its value in ``repr`` and nothing in
this module logs or raises with one.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from deid.codes import RejectReason
from deid.errors import RejectedError
from deid.names import (
    ASCII_NOT_ALNUM,
    MIN_LENGTH,
    PLACEHOLDER_WORDS,
    dedupe_key,
    name_forms,
    name_parts,
)
from deid.rawitems import (
    MAX_DEPTH,
    NestingTooDeepError,
    RawItem,
    as_if_converted,
    sequence_items,
)
from deid.tags import element_keyword, format_tag, held_vr, keyword_of
from deid.values import fast_reading, is_canonical, level_codec, peek, raw_vr, read_values

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement


class Category(str, Enum):
    """What kind of identifier a value is."""

    NAME = "name"
    NAME_PART = "name_part"
    ID = "id"
    DATE = "date"
    INSTITUTION = "institution"
    ADDRESS = "address"
    PHONE = "phone"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Identifier:
    """One identifying value of the input.

    Attributes
    ----------
    category
        What kind of identifier it is.
    value
        The original text, stripped. Hidden from ``repr``.
    source
        Keyword of the attribute it came from (or its tag for private elements).
    """

    category: Category
    value: str = field(repr=False)
    source: str


@dataclass(frozen=True)
class Identifiers:
    """The identifiers of one object, without duplicates, in a deterministic order."""

    items: tuple[Identifier, ...]

    def by_category(self, *categories: Category | str) -> tuple[Identifier, ...]:
        """Return the identifiers of the given categories (none given: none returned)."""
        wanted = _categories(categories)
        return tuple(item for item in self.items if item.category in wanted)

    def without(self, *categories: Category | str) -> Identifiers:
        """Return a copy without the given categories (e.g. DATE when dates are kept)."""
        dropped = _categories(categories)
        return Identifiers(tuple(item for item in self.items if item.category not in dropped))

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[Identifier]:
        return iter(self.items)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.category.value] = counts.get(item.category.value, 0) + 1
        shown = ", ".join(f"{name}={count}" for name, count in counts.items())
        return f"Identifiers({shown})"


def _categories(values: Iterable[Category | str]) -> frozenset[Category]:
    return frozenset(Category(value) for value in values)


# Attributes whose whole value is an identifier (PN and DA/DT are found by VR instead).
_BY_KEYWORD: dict[str, Category] = {
    "PatientID": Category.ID,
    "OtherPatientIDs": Category.ID,
    "IssuerOfPatientID": Category.ID,
    "AccessionNumber": Category.ID,
    "StudyID": Category.ID,
    "AdmissionID": Category.ID,
    "ServiceEpisodeID": Category.ID,
    "MedicalRecordLocator": Category.ID,
    "RequestedProcedureID": Category.ID,
    "PerformedProcedureStepID": Category.ID,
    "ScheduledProcedureStepID": Category.ID,
    "FillerOrderNumberImagingServiceRequest": Category.ID,
    "PlacerOrderNumberImagingServiceRequest": Category.ID,
    "FillerOrderNumberProcedure": Category.ID,
    "PlacerOrderNumberProcedure": Category.ID,
    "ClinicalTrialSubjectID": Category.ID,
    "ClinicalTrialSubjectReadingID": Category.ID,
    "InsurancePlanIdentification": Category.ID,
    "InstitutionName": Category.INSTITUTION,
    "InstitutionalDepartmentName": Category.INSTITUTION,
    "ResponsibleOrganization": Category.INSTITUTION,
    "InstitutionAddress": Category.ADDRESS,
    "PatientAddress": Category.ADDRESS,
    "ReferringPhysicianAddress": Category.ADDRESS,
    "PersonAddress": Category.ADDRESS,
    "CountryOfResidence": Category.ADDRESS,
    "RegionOfResidence": Category.ADDRESS,
    "PatientTelephoneNumbers": Category.PHONE,
    "PatientTelecomInformation": Category.PHONE,
    "ReferringPhysicianTelephoneNumbers": Category.PHONE,
    "PersonTelephoneNumbers": Category.PHONE,
    "MilitaryRank": Category.OTHER,
    "BranchOfService": Category.OTHER,
    "Occupation": Category.OTHER,
    "PatientReligiousPreference": Category.OTHER,
}

# Inside these sequences, the code value is an identifier too.
_CODE_VALUE_SEQUENCES = frozenset({"PatientInsurancePlanCodeSequence"})

# A value made of the words of one of these names a device or its maker, not a person or a
# place (test and phantom objects, AI results whose "creator" is the vendor). The output keeps
# these attributes, so such a value is not treated as an identifier.
_DEVICE_KEYWORDS = frozenset({"Manufacturer", "ManufacturerModelName"})
# Only a place can be named by a device maker (phantom scans at the vendor's site); a person's
# name or an ID that happens to appear in a Manufacturer value is still an identifier.
_PLACE_CATEGORIES = frozenset({Category.INSTITUTION, Category.ADDRESS})
_GENERIC_DEPARTMENT_WORDS = frozenset(
    {
        "radiology", "imaging", "diagnostic", "diagnostics", "department", "dept", "ct", "mr",
        "mri", "xray", "x", "ray", "nuclear", "medicine", "ultrasound", "us", "emergency", "er",
        "ed", "icu", "cardiology", "oncology", "neurology", "mammography", "pet", "services",
        "interventional", "unit", "clinic", "of", "and", "the",
    }
)  # fmt: skip
# Name parts are judged with their whole name (see _add_name_group): "BLANK" in "BLANK^MARIA"
# is a surname, and is kept.
_NAME_CATEGORIES = frozenset({Category.NAME, Category.NAME_PART})
_PN_COMPONENTS = 3


def collect(ds: Dataset) -> Identifiers:
    """Collect the identifiers of a data set, its sequences at any depth and its file meta.

    Parameters
    ----------
    ds
        The original data set, before any change.

    Returns
    -------
    Identifiers
        Every identifier once, in walk order (file meta first, then by tag, depth first).
        Values that cannot be decoded are skipped; this function does not raise on odd values.
    """
    collector = _Collector()
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        collector.walk(file_meta, in_code_sequence=False)
    collector.walk(ds, in_code_sequence=False)
    return Identifiers(collector.identifiers())


class _Collector:
    """Accumulates identifiers without duplicates while walking a data set."""

    def __init__(self) -> None:
        self.fast = fast_reading()
        self.items: list[Identifier] = []
        self._seen: set[tuple[Category, str]] = set()
        # (category, value) already given to add(): a second time adds nothing.
        self._done: set[tuple[Category, str]] = set()
        self._devices: list[set[str]] = []

    def identifiers(self) -> tuple[Identifier, ...]:
        """What was found, less the values whose words all come from one device name."""
        if not self._devices:
            return tuple(self.items)
        return tuple(
            item
            for item in self.items
            if item.category not in _PLACE_CATEGORIES or not self._names_a_device(item.value)
        )

    def _names_a_device(self, value: str) -> bool:
        words = set(dedupe_key(value).split())
        return any(words <= device for device in self._devices)

    def add(self, category: Category, value: str, source: str) -> None:
        done = (category, value)
        if done in self._done:
            return  # added then (and a duplicate now), or rejected again
        self._done.add(done)
        text = value.strip(" \t\r\n\x00")
        if len(text) < MIN_LENGTH:
            return
        words = dedupe_key(text)
        key = (category, words)
        if key in self._seen or not _long_enough(category, text, words):
            return  # (a value seen already adds nothing, whatever _long_enough says)
        self._seen.add(key)
        self.items.append(Identifier(category, text, source))

    def walk(self, ds: Dataset, *, in_code_sequence: bool) -> None:
        codec = level_codec(ds) if self.fast else None
        for tag, held in _elements(ds, in_code_sequence=in_code_sequence):
            try:
                raw = held if codec is not None and isinstance(held, RawDataElement) else None
                if raw is not None and raw.VR == "SQ" and self._raw_sequence(ds, raw, codec):
                    continue  # read from its bytes: pydicom builds no items
                vr = raw_vr(raw) if raw is not None else None
                if raw is not None and vr is not None and codec is not None:
                    values = read_values(raw, vr, codec)
                    if values is not None and is_canonical(raw, vr, values, codec):
                        # What pydicom would decode, and write back unchanged: stays raw.
                        self._visit_values(vr, element_keyword(tag), tag, values, in_code_sequence)
                        continue
                elem = peek(ds, tag)
            except RejectedError:
                raise
            except Exception:  # pydicom raises on malformed values: skip them
                continue
            try:
                self._visit(elem, in_code_sequence=in_code_sequence)
            except Exception:  # malformed values are skipped, never reported with their value
                continue

    def _raw_sequence(self, ds: Dataset, raw: RawDataElement, codec: str | None) -> bool:
        """Visit a raw sequence's items read by :mod:`deid.rawitems`, exactly as :meth:`walk`
        visits pydicom's items; False (nothing visited) when a value needs pydicom.

        The sequence stays raw; what converting it does to ``ds`` itself is still done
        (:func:`deid.rawitems.as_if_converted`)."""
        visits: list[tuple[str, str, int, list[str], bool]] = []
        nested = element_keyword(raw.tag) in _CODE_VALUE_SEQUENCES
        try:
            if codec is None or not _raw_visits(raw, codec, nested, visits):
                return False
        except NestingTooDeepError:
            raise RejectedError(
                RejectReason.SIZE_LIMIT, f"sequences nested more than {MAX_DEPTH} deep"
            ) from None
        try:
            as_if_converted(ds)
        except Exception:  # pydicom's conversion fails the same way: its path skips it
            return False
        for vr, keyword, tag, values, in_code_sequence in visits:
            try:
                self._visit_values(vr, keyword, tag, values, in_code_sequence)
            except Exception:  # as in walk: skipped, never reported with its value
                continue
        return True

    def _visit(self, elem: DataElement, *, in_code_sequence: bool) -> None:
        vr = elem.VR
        if vr == "SQ":
            nested = elem.keyword in _CODE_VALUE_SEQUENCES
            for item in elem.value or ():
                self.walk(item, in_code_sequence=nested)
            return
        self._visit_values(vr, elem.keyword, elem.tag, _values(elem), in_code_sequence)

    def _visit_values(
        self, vr: str, keyword: str, tag: int, values: list[Any], in_code_sequence: bool
    ) -> None:
        source = keyword or format_tag(tag)
        if vr == "PN":
            for name in values:
                self._add_person_name(name, source)
            return
        if vr in ("DA", "DT"):
            for value in values:
                self._add_date(value, source)
            return
        if keyword in _DEVICE_KEYWORDS:
            self._devices.extend(
                set(dedupe_key(value).split()) for value in values if isinstance(value, str)
            )
            return
        category = _BY_KEYWORD.get(keyword)
        if category is None and in_code_sequence and keyword == "CodeValue":
            category = Category.ID
        if category is not None:
            for value in values:
                if isinstance(value, str):
                    self.add(category, value, source)

    def _add_person_name(self, value: object, source: str) -> None:
        if isinstance(value, PersonName):
            groups: Iterable[str] = value.components
        elif isinstance(value, str):
            groups = value.split("=")
        else:
            return
        for group in list(groups)[:_PN_COMPONENTS]:
            self._add_name_group(group, source)

    def _add_name_group(self, group: str, source: str) -> None:
        words = {w for w in dedupe_key(group).split() if len(w) >= MIN_LENGTH}
        if words and words <= PLACEHOLDER_WORDS:
            return  # "ANONYMOUS", "Test^Patient": a placeholder names nobody
        parts = [part.strip() for part in group.split("^")] + [""] * 5
        family, given, middle = parts[0], parts[1], parts[2]
        self.add(Category.NAME, group.strip().rstrip("^").strip(), source)
        for form in name_forms(family, given, middle):
            self.add(Category.NAME, form, source)
        for part in (family, given, middle):
            for candidate in name_parts(part):
                self.add(Category.NAME_PART, candidate, source)

    def _add_date(self, value: object, source: str) -> None:
        if isinstance(value, datetime.date):
            text = value.strftime("%Y%m%d")
        elif isinstance(value, str):
            text = value.strip()[:8]
        else:
            return
        if _is_full_date(text):
            self.add(Category.DATE, text, source)


_WANTED_VRS = frozenset({"SQ", "PN", "DA", "DT"})
_WANTED_KEYWORDS = frozenset(_BY_KEYWORD) | _DEVICE_KEYWORDS


def _elements(
    ds: Dataset, *, in_code_sequence: bool = False
) -> Iterator[tuple[int, DataElement | RawDataElement]]:
    """Yield ``(tag, element as stored)`` of one level's elements that can hold an
    identifier, sorted by tag.

    Only those are decoded (names, dates, sequences and the listed keywords): the rest stay
    raw bytes.
    """
    try:
        items = sorted((int(tag), elem) for tag, elem in ds.items())
    except Exception:
        return
    for tag, held in items:
        wanted = _TAG_WANTED.get(tag)
        if wanted is None:
            wanted = _tag_wanted(tag)
        keyed = wanted == _WANTED or (wanted == _CODE_VALUE and in_code_sequence)
        if not keyed and held_vr(held, tag) not in _WANTED_VRS:
            continue
        yield tag, held


# Per tag, whether its keyword makes it wanted: always, only inside a code sequence
# (CodeValue) or not. Tags only, no values; bounded.
_NOT_WANTED, _WANTED, _CODE_VALUE = 0, 1, 2
_TAG_WANTED: dict[int, int] = {}
_TAG_WANTED_LIMIT = 50_000


def _tag_wanted(tag: int) -> int:
    keyword = keyword_of(tag)
    if keyword in _WANTED_KEYWORDS:
        wanted = _WANTED
    else:
        wanted = _CODE_VALUE if keyword == "CodeValue" else _NOT_WANTED
    if len(_TAG_WANTED) < _TAG_WANTED_LIMIT:
        _TAG_WANTED[tag] = wanted
    return wanted


def _raw_visits(
    raw: RawDataElement,
    codec: str,
    in_code_sequence: bool,
    out: list[tuple[str, str, int, list[str], bool]],
    depth: int = 0,
    items_of: Callable[[RawDataElement], list[RawItem] | None] = sequence_items,
) -> bool:
    """Append what :meth:`_Collector.walk` would visit in a raw sequence's items (items
    inherit the codec: :func:`deid.rawitems.sequence_items` refuses a character set in
    them); False when an element of interest is not a canonical text value. ``items_of``:
    what reads a raw sequence's items (:func:`deid.rawitems.sequence_items`, or the same
    items read once for every stage, :mod:`deid.fastplan`)."""
    if depth > MAX_DEPTH:
        raise NestingTooDeepError
    items = items_of(raw)
    if items is None:
        return False
    for item in items:
        for tag, held in sorted((int(key), value) for key, value in item.items()):
            # (int tags: pydicom's BaseTag compares in Python, an int in C)
            wanted = _TAG_WANTED.get(tag)
            if wanted is None:
                wanted = _tag_wanted(tag)
            keyed = wanted == _WANTED or (wanted == _CODE_VALUE and in_code_sequence)
            if not keyed and held.VR not in _WANTED_VRS:
                continue
            if held.VR == "SQ":
                nested = element_keyword(tag) in _CODE_VALUE_SEQUENCES
                if not _raw_visits(held, codec, nested, out, depth + 1, items_of):
                    return False
                continue
            vr = raw_vr(held)
            values = read_values(held, vr, codec) if vr is not None else None
            if vr is None or values is None or not is_canonical(held, vr, values, codec):
                return False
            out.append((vr, element_keyword(tag), tag, values, in_code_sequence))
    return True


def _values(elem: DataElement) -> list[object]:
    """The values of an element as a list; empty for binary values and ``None``."""
    value = elem.value
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _long_enough(category: Category, text: str, key: str | None = None) -> bool:
    """Skip empty, too short and placeholder values, IDs made only of zeros and generic
    department names (``key``: ``dedupe_key(text)`` when known)."""
    if len(text) < MIN_LENGTH:
        return False
    if not text.isascii():
        alnum = "".join(char for char in text if char.isalnum())
    elif key is not None:  # the same letters and digits, lower case, between spaces
        alnum = key.replace(" ", "")
    else:
        alnum = text.encode("ascii").translate(None, ASCII_NOT_ALNUM).decode("ascii")
    if len(alnum) < MIN_LENGTH:
        return False
    if category is Category.ID and not alnum.strip("0"):
        return False
    words = set((dedupe_key(text) if key is None else key).split())
    if category not in _NAME_CATEGORIES and words <= PLACEHOLDER_WORDS:
        return False
    return not (category is Category.INSTITUTION and words <= _GENERIC_DEPARTMENT_WORDS)


def _is_full_date(text: str) -> bool:
    """Whether ``text`` is a valid full date ``YYYYMMDD``."""
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return False
    try:
        datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True
