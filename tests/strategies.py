"""Hypothesis strategies: patients with random names, IDs and dates, and free text quoting them.

Identifiers are drawn so that finding one in an output can only mean it leaked: name parts
never occur by chance in what deid writes itself (marker texts, VR codes, the filler words of
the free text), IDs mix letters and digits, and study dates lie more than ten years (the widest
date shift) after the birth date, so no shifted date can spell the birth date.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from hypothesis import strategies as st
from pydicom.dataset import Dataset

from deid import Deidentifier, Pseudonymizer
from tests.conftest import KEY
from tests.factories import item, make_dataset, sequence_of, to_bytes

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FILLER = (
    "ct", "chest", "pain", "follow", "up", "seen", "by", "for", "with", "contrast", "left",
    "right", "knee", "report", "to", "of", "the", "and", "no", "change",
)  # fmt: skip
VR_CODES = frozenset(
    {
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
        "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
        "UR", "US", "UT", "UV",
    }
)  # fmt: skip
# Titles and particles: deid does not treat them as name parts (see deid.identifiers).
NOT_NAME_PARTS = frozenset(
    {
        "DR", "MR", "MRS", "MS", "MX", "MISS", "JR", "SR", "II", "III", "IV", "PROF", "PHD", "MD",
        "REV", "SIR", "DDS", "DMD", "RN", "ESQ", "VAN", "VON", "DER", "DEN", "DEL", "DES", "DOS",
        "DAS", "LA", "LE", "DE", "DI", "DU", "DA",
    }
)  # fmt: skip
# Placeholder values: deid does not take a value made only of these for an identifier.
PLACEHOLDERS = frozenset(
    {
        "NONE", "UNKNOWN", "UNK", "NIL", "NULL", "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "ANON",
        "REMOVED", "REDACTED", "DEIDENTIFIED", "BLANK", "EMPTY", "PATIENT", "TEST",
    }
)  # fmt: skip
ROOT = "1.2.826.0.1.3680043.8.498.3"
LO_MAX = 64


@dataclass(frozen=True)
class Patient:
    """One object's planted identity and the free text that quotes it."""

    family: str
    given: str
    middle: str
    patient_id: str
    birth: str  # YYYYMMDD
    study_date: str  # YYYYMMDD
    description: str  # Study Description (LO)
    comments: str  # Image Comments (LT)
    nested: str  # Request Attributes Sequence > Requested Procedure Description (LO)
    instance: int

    @property
    def name(self) -> str:
        return "^".join(p for p in (self.family, self.given, self.middle) if p)

    def dataset(self) -> Dataset:
        request = item(RequestedProcedureDescription=self.nested, RequestedProcedureID="RQ1")
        return make_dataset(
            pixels=True,
            PatientName=self.name,
            PatientID=self.patient_id,
            PatientBirthDate=self.birth,
            StudyDate=self.study_date,
            StudyDescription=self.description or None,
            ImageComments=self.comments or None,
            RequestAttributesSequence=sequence_of(request),
            SOPInstanceUID=f"{ROOT}.{self.instance}",
            StudyInstanceUID=f"{ROOT}.{self.instance}.1",
            SeriesInstanceUID=f"{ROOT}.{self.instance}.2",
            FrameOfReferenceUID=f"{ROOT}.{self.instance}.3",
        )

    def encoded(self) -> bytes:
        return to_bytes(self.dataset())

    def identifiers(self) -> list[str]:
        """What must not survive: name parts of three characters or more, the ID, the birth
        date as stored and in each spelling planted in the text."""
        words = [w for p in (self.family, self.given, self.middle) for w in re.split("[- ]", p)]
        parts = [p for p in (self.family, *words) if len(p) >= 3]
        return [*dict.fromkeys(parts), self.patient_id, *birth_spellings(self.birth)]


def birth_spellings(birth: str) -> tuple[str, ...]:
    y, m, d = birth[:4], birth[4:6], birth[6:]
    return (birth, f"{y}-{m}-{d}", f"{d}/{m}/{y}", f"{d}.{m}.{y}")


@functools.cache
def noise() -> str:
    """Lower-cased text that deid writes whatever the input, plus the filler words.

    A neutral object is de-identified once; its keyed pseudonyms are blanked, so that what
    remains is what every output shares (markers, equipment, VR codes, tags).
    """
    neutral = make_dataset(
        pixels=True,
        PatientName="QQQQ^QQQQ",
        PatientID="QQ00000001",
        StudyDescription="x",
        ImageComments="x",
        RequestAttributesSequence=sequence_of(item(RequestedProcedureDescription="x")),
    )
    key = Pseudonymizer(KEY)
    data = Deidentifier("upload", key).deidentify_bytes(to_bytes(neutral)).data
    data = blank(data, [key.patient_id("QQ00000001"), key.patient_name("QQ00000001", "")])
    return data.decode("latin-1").lower() + "\x00" + " ".join(FILLER)


def blank(data: bytes, values: list[str]) -> bytes:
    """``data`` with every occurrence of ``values`` (exact bytes) replaced by NULs."""
    for value in values:
        raw = value.encode("ascii")
        data = data.replace(raw, b"\x00" * len(raw))
    return data


def _usable_part(part: str) -> bool:
    if part in NOT_NAME_PARTS or part in PLACEHOLDERS or part.lower() in noise():
        return False
    # A VR code followed by a length byte that is a letter spells three letters in any file.
    return not (len(part) == 3 and part[:2] in VR_CODES)


name_parts = st.text(alphabet=LETTERS, min_size=3, max_size=10).filter(_usable_part)
#: Family names: one part, or two joined by a hyphen or a space (SMITH-JONES, VAN BERG).
families = st.one_of(
    name_parts,
    st.builds("{}{}{}".format, name_parts, st.sampled_from("- "), name_parts),
)
middles = st.one_of(st.just(""), st.text(alphabet=LETTERS, min_size=1, max_size=2), name_parts)
patient_ids = st.from_regex(r"\A[A-Z]{2,3}[0-9]{5,8}\Z")
birth_dates = st.dates(dt.date(1920, 1, 1), dt.date(1990, 12, 31))
study_dates = st.dates(dt.date(2005, 1, 1), dt.date(2024, 12, 31))


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word.upper(), word.lower(), word.title()])


@st.composite
def free_text(draw: st.DrawFn, family: str, given: str, pid: str, birth: str, limit: int) -> str:
    """Filler words with the patient's names, ID and birth date in several spellings."""
    quotes = [
        _cased(family),
        _cased(given),
        _cased(f"{family}^{given}"),
        _cased(f"{given} {family}"),
        _cased(f"{family}, {given}"),
        st.just(pid),
        st.just(f"MRN: {pid}"),
        st.sampled_from(birth_spellings(birth)),
        st.sampled_from(FILLER),
        st.sampled_from(FILLER),
    ]
    words = draw(st.lists(st.one_of(quotes), max_size=8))
    text = ""
    for word in words:
        candidate = f"{text} {word}" if text else word
        if len(candidate) > limit:
            break
        text = candidate
    return text


@st.composite
def patients(draw: st.DrawFn) -> Patient:
    family = draw(families)
    given = draw(name_parts)
    middle = draw(middles)
    pid = draw(patient_ids)
    birth = draw(birth_dates).strftime("%Y%m%d")
    study = draw(study_dates).strftime("%Y%m%d")
    text = functools.partial(free_text, family, given, pid, birth)
    return Patient(
        family=family,
        given=given,
        middle=middle,
        patient_id=pid,
        birth=birth,
        study_date=study,
        description=draw(text(LO_MAX)),
        comments=draw(text(400)),
        nested=draw(text(LO_MAX)),
        instance=draw(st.integers(min_value=1, max_value=10**6)),
    )
