"""Policies: the Basic Profile, a set of its options, and site overrides.

A policy is a TOML file validated on load::

    name = "upload"
    description = "..."
    extends = "basic"                         # optional: a named policy or a file
    options = ["retain_safe_private", "clean_descriptors"]
    pseudonymize = ["PatientID", "PatientName"]   # Z/D on these gives a keyed pseudonym
    keep = ["BodyPartExamined", "(0018,0015)"]    # shorthand for overrides = K
    date_shift_days = [-3650, -1]               # Retain Longitudinal Modified Dates range
    clean_pixel_data = "auto"                   # auto | always | never (burned-in text)

    [pixels]                                    # how the pixel pass works (all optional)
    text = "all"                                # all | identifiers
    engine = "rapidocr"                         # an OCR engine name or "module:attribute"
    pad = 3                                     # pixels added around every text box
    lossless = false                            # re-encode lossy syntaxes losslessly
    read = "places"                             # places | frames (where the engine reads)

    [overrides]                                 # keyword or tag = a simple action code
    "(0008,1030)" = "X"
    StationName = "K"

Unknown keys, unknown keywords or tags, bad action codes and conflicting date options raise
:class:`deid.PolicyError` naming the file and the key.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from deid.codes import ActionCode, PixelMode, PixelRead, PixelText, ProfileOption
from deid.errors import PolicyError
from deid.tags import format_tag, parse_tag

_SIMPLE = frozenset(
    {ActionCode.D, ActionCode.Z, ActionCode.X, ActionCode.K, ActionCode.C, ActionCode.U}
)
_KEYS = frozenset(
    {
        "name",
        "description",
        "extends",
        "options",
        "pseudonymize",
        "keep",
        "overrides",
        "date_shift_days",
        "clean_pixel_data",
        "pixels",
        "allow_sop_classes",
        "allow_recognizable_visual_features",
    }
)
_PIXEL_KEYS = frozenset({"text", "engine", "pad", "lossless", "read"})
DEFAULT_OCR_ENGINE = "rapidocr"
_UID_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)*")


@dataclass(frozen=True)
class PixelSettings:
    """How the pixel pass works (the policy's ``[pixels]`` table).

    Parameters
    ----------
    text : PixelText or str
        ``all`` blanks every detected text; ``identifiers`` only text read as an identifier.
    engine : str
        The OCR engine: a registered name (``rapidocr``) or ``module:attribute``.
    pad : int
        Pixels added on each side of every detected box before blanking (0-64).
    lossless : bool
        Re-encode lossy JPEG / JPEG 2000 pixel data losslessly instead of at matching quality.
    read : PixelRead or str
        ``places``: the engine reads only the places the pre-screen flags (as crops);
        ``frames``: every flagged frame whole.
    """

    text: PixelText = PixelText.ALL
    engine: str = DEFAULT_OCR_ENGINE
    pad: int = 3
    lossless: bool = False
    read: PixelRead = PixelRead.PLACES

    def validated(self, source: str) -> PixelSettings:
        try:
            text = PixelText(self.text)
        except ValueError:
            raise PolicyError(
                "must be one of all, identifiers", source=source, key="pixels.text"
            ) from None
        if not isinstance(self.engine, str) or not self.engine.strip():
            raise PolicyError("must be an engine name", source=source, key="pixels.engine")
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or not 0 <= self.pad <= 64:
            raise PolicyError("must be a whole number 0-64", source=source, key="pixels.pad")
        if not isinstance(self.lossless, bool):
            raise PolicyError("must be true or false", source=source, key="pixels.lossless")
        try:
            read = PixelRead(self.read)
        except ValueError:
            raise PolicyError(
                "must be one of places, frames", source=source, key="pixels.read"
            ) from None
        return replace(self, text=text, engine=self.engine.strip(), read=read)


DEFAULT_DATE_SHIFT = (-3650, -1)


@dataclass(frozen=True)
class Policy:
    """What to do: options of the Basic Profile plus site overrides. Immutable.

    Parameters
    ----------
    options : iterable of ProfileOption or str
        Options of PS3.15 Table E.1-1 to use.
    overrides : mapping of tag (int), keyword or ``"(gggg,eeee)"`` to an action code
        Replace the table's action for that attribute wherever it occurs.
    pseudonymize : iterable of keyword or tag
        Attributes that get a keyed pseudonym where the profile empties or dummies them.
    date_shift_days : (low, high)
        Range of the per-patient shift for Retain Longitudinal Modified Dates (never 0).
    clean_pixel_data : PixelMode or str
        Which objects get the pixel pass (burned-in text found by OCR and blanked): ``auto``
        (objects at risk), ``always`` or ``never`` (pixel data released as it is).
    pixels : PixelSettings or mapping
        How the pixel pass works (text to blank, OCR engine, padding, lossless re-encoding).
    allow_sop_classes : iterable of UID strings
        SOP Classes deid rejects by default (encapsulated documents and models, raw data,
        private SOP Classes: :data:`deid.gates.UNSAFE_SOP_CLASSES`; SR documents whose content
        the policy cannot clean: :func:`deid.gates.check_content`) that this site has checked
        and wants processed all the same (attributes only: their payload is not cleaned, SR
        content leaves as the policy's actions leave it).
    allow_recognizable_visual_features : bool
        Release objects whose Recognizable Visual Features is YES (faces in photographs or
        volume renderings): deid does not offer Clean Recognizable Visual Features, so they
        are rejected unless this is true.
    """

    options: frozenset[ProfileOption] = frozenset()
    overrides: Mapping[int, ActionCode] = field(default_factory=lambda: MappingProxyType({}))
    pseudonymize: frozenset[int] = frozenset()
    date_shift_days: tuple[int, int] = DEFAULT_DATE_SHIFT
    clean_pixel_data: PixelMode = PixelMode.AUTO
    pixels: PixelSettings = field(default_factory=PixelSettings)
    allow_sop_classes: frozenset[str] = frozenset()
    allow_recognizable_visual_features: bool = False
    name: str = "custom"
    description: str = ""
    source: str = "<code>"

    def __post_init__(self) -> None:
        options = frozenset(_parse_option(o, self.source) for o in self.options)
        object.__setattr__(self, "options", options)
        overrides = dict(
            _parse_override(k, v, self.source) for k, v in dict(self.overrides).items()
        )
        object.__setattr__(self, "overrides", MappingProxyType(overrides))
        pseudo = frozenset(
            _parse_tag_key(k, self.source, "pseudonymize") for k in self.pseudonymize
        )
        object.__setattr__(self, "pseudonymize", pseudo)
        low_high = tuple(self.date_shift_days)
        if (
            len(low_high) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in low_high)
            or low_high[0] > low_high[1]
            or low_high == (0, 0)
        ):
            raise PolicyError(
                "must be [low, high] whole days, low <= high, not only 0",
                source=self.source,
                key="date_shift_days",
            )
        object.__setattr__(self, "date_shift_days", (int(low_high[0]), int(low_high[1])))
        try:
            mode = PixelMode(self.clean_pixel_data)
        except ValueError:
            raise PolicyError(
                "must be one of auto, always, never", source=self.source, key="clean_pixel_data"
            ) from None
        object.__setattr__(self, "clean_pixel_data", mode)
        allowed: object = self.allow_sop_classes
        if (
            isinstance(allowed, str)
            or not isinstance(allowed, Iterable)
            or not all(isinstance(uid, str) and _UID_TEXT.fullmatch(uid.strip()) for uid in allowed)
        ):
            raise PolicyError("must be a list of UIDs", source=self.source, key="allow_sop_classes")
        uids = frozenset(str(uid).strip() for uid in allowed)
        object.__setattr__(self, "allow_sop_classes", uids)
        if not isinstance(self.allow_recognizable_visual_features, bool):
            raise PolicyError(
                "must be true or false",
                source=self.source,
                key="allow_recognizable_visual_features",
            )
        pixels: object = self.pixels
        if not isinstance(pixels, PixelSettings):  # a mapping, as in the TOML table
            pixels = _pixel_settings(pixels, PixelSettings(), self.source)
        object.__setattr__(self, "pixels", pixels.validated(self.source))
        if {
            ProfileOption.RETAIN_LONG_FULL_DATES,
            ProfileOption.RETAIN_LONG_MODIFIED_DATES,
        } <= options:
            raise PolicyError(
                "retain_long_full_dates and retain_long_modified_dates exclude each other",
                source=self.source,
                key="options",
            )

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (worker processes): the read-only overrides travel as a plain dict."""
        state = dict(self.__dict__)
        state["overrides"] = dict(self.overrides)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "overrides", MappingProxyType(dict(state["overrides"])))

    def with_options(self, *options: ProfileOption | str) -> Policy:
        """A copy with more options."""
        return replace(
            self, options=self.options | {_parse_option(o, self.source) for o in options}
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (no secrets)."""
        return {
            "name": self.name,
            "description": self.description,
            "options": sorted(o.value for o in self.options),
            "overrides": {format_tag(t): a.value for t, a in sorted(self.overrides.items())},
            "pseudonymize": sorted(keyword_for_tag(t) or format_tag(t) for t in self.pseudonymize),
            "date_shift_days": list(self.date_shift_days),
            "clean_pixel_data": self.clean_pixel_data.value,
            "allow_sop_classes": sorted(self.allow_sop_classes),
            "allow_recognizable_visual_features": self.allow_recognizable_visual_features,
            "pixels": {
                "text": self.pixels.text.value,
                "engine": self.pixels.engine,
                "pad": self.pixels.pad,
                "lossless": self.pixels.lossless,
                "read": self.pixels.read.value,
            },
        }


def _parse_option(value: object, source: str) -> ProfileOption:
    if not isinstance(value, str | ProfileOption):
        raise PolicyError("options must be strings", source=source, key="options")
    try:
        return ProfileOption.parse(value)
    except ValueError:
        raise PolicyError(f"unknown option {value!r}", source=source, key="options") from None


def _parse_action(value: object, source: str, key: str) -> ActionCode:
    if not isinstance(value, str | ActionCode):
        raise PolicyError("action must be a string", source=source, key=key)
    try:
        code = ActionCode.parse(value)
    except ValueError:
        raise PolicyError(f"unknown action {value!r}", source=source, key=key) from None
    if code not in _SIMPLE:
        raise PolicyError("override actions must be one of D Z X K C U", source=source, key=key)
    return code


def _parse_override(key: object, value: object, source: str) -> tuple[int, ActionCode]:
    """One ``overrides`` entry; errors name the key as written (a tag int as ``(gggg,eeee)``)."""
    tag = _parse_tag_key(key, source, "overrides")
    where = f"overrides.{format_tag(key) if isinstance(key, int) else key}"
    code = _parse_action(value, source, where)
    if code is ActionCode.U:
        try:
            vr = dictionary_VR(tag)
        except KeyError:  # private or unknown: the planner decides those elements itself
            vr = "UI"
        if vr not in ("UI", "SQ"):
            raise PolicyError(
                f"U (a new UID) applies to UIDs and sequences, not VR {vr}",
                source=source,
                key=where,
            )
    return tag, code


def _parse_tag_key(value: object, source: str, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 0xFFFFFFFF:
            raise PolicyError(f"tag out of range: {value}", source=source, key=key)
        return value
    if not isinstance(value, str):
        raise PolicyError("tags must be keywords or '(gggg,eeee)'", source=source, key=key)
    text = value.strip()
    if text.startswith("("):
        try:
            return parse_tag(text)
        except ValueError:
            raise PolicyError(f"not a tag: {text!r}", source=source, key=key) from None
    tag = tag_for_keyword(text)
    if tag is None:
        raise PolicyError(f"unknown keyword {text!r}", source=source, key=key)
    return tag


def _as_list(value: object, source: str, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError("must be a list", source=source, key=key)
    return value


def policy_from_mapping(
    data: Mapping[str, Any], *, source: str, _seen: tuple[str, ...] = ()
) -> Policy:
    """Build a :class:`Policy` from parsed TOML (``source`` names it in errors)."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise PolicyError(f"unknown key(s) {unknown}", source=source, key=unknown[0])
    base = Policy(source=source)
    if "extends" in data:
        parent = data["extends"]
        if not isinstance(parent, str):
            raise PolicyError("must be a policy name or file", source=source, key="extends")
        if parent not in named_policies() and source != "<code>" and not Path(parent).is_absolute():
            parent = os.path.normpath(Path(source).parent / parent)  # beside the extending file
        if parent in _seen or parent == source:
            raise PolicyError("policies extend each other in a cycle", source=source, key="extends")
        base = load_policy(parent, _seen=(*_seen, source))
    name = data.get("name", Path(source).stem if source != "<code>" else "custom")
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise PolicyError("must be a string", source=source, key=key)
    options = [*base.options, *_as_list(data.get("options", []), source, "options")]
    overrides_raw = data.get("overrides", {})
    if not isinstance(overrides_raw, dict):
        raise PolicyError("must be a table", source=source, key="overrides")
    overrides: dict[int, ActionCode] = dict(base.overrides)
    for key in _as_list(data.get("keep", []), source, "keep"):
        overrides[_parse_tag_key(key, source, "keep")] = ActionCode.K
    for key, value in overrides_raw.items():
        tag, code = _parse_override(key, value, source)
        overrides[tag] = code
    pseudo = [*base.pseudonymize, *_as_list(data.get("pseudonymize", []), source, "pseudonymize")]
    shift = data.get("date_shift_days", list(base.date_shift_days))
    shift = tuple(_as_list(shift, source, "date_shift_days"))
    pixels = data.get("clean_pixel_data", base.clean_pixel_data)
    if not isinstance(pixels, str):
        raise PolicyError("must be a string", source=source, key="clean_pixel_data")
    return Policy(
        options=frozenset(options),
        overrides=overrides,
        pseudonymize=frozenset(pseudo),
        date_shift_days=shift,
        clean_pixel_data=pixels,  # type: ignore[arg-type]
        pixels=_pixel_settings(data.get("pixels"), base.pixels, source),
        allow_sop_classes=frozenset(
            [
                *base.allow_sop_classes,
                *_as_list(data.get("allow_sop_classes", []), source, "allow_sop_classes"),
            ]
        ),
        allow_recognizable_visual_features=data.get(
            "allow_recognizable_visual_features", base.allow_recognizable_visual_features
        ),
        name=name,
        description=description,
        source=source,
    )


def _pixel_settings(value: object, base: PixelSettings, source: str) -> PixelSettings:
    """The ``[pixels]`` table over the parent's settings."""
    if value is None:
        return base
    if not isinstance(value, dict):
        raise PolicyError("must be a table", source=source, key="pixels")
    unknown = sorted(set(value) - _PIXEL_KEYS)
    if unknown:
        raise PolicyError(f"unknown key(s) {unknown}", source=source, key=f"pixels.{unknown[0]}")
    return replace(base, **value).validated(source)


@functools.cache
def named_policies() -> tuple[str, ...]:
    """Names of the policies shipped in ``deid.profiles/policies``."""
    folder = resources.files("deid.profiles").joinpath("policies")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


@functools.cache
def _load_named(name: str, seen: tuple[str, ...]) -> Policy:
    ref = resources.files("deid.profiles").joinpath("policies", f"{name}.toml")
    return _parse_toml(ref.read_text(encoding="utf-8"), f"policies/{name}.toml", seen)


def _parse_toml(text: str, source: str, seen: tuple[str, ...]) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"invalid TOML: {exc}", source=source) from None
    return policy_from_mapping(data, source=source, _seen=seen)


def load_policy(spec: str | Path | Policy, *, _seen: tuple[str, ...] = ()) -> Policy:
    """A named policy (``deid policies`` lists them), a TOML file path, or a Policy as is."""
    if isinstance(spec, Policy):
        return spec
    text = str(spec)
    if isinstance(spec, str) and spec in named_policies():
        return _load_named(spec, _seen)
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read policy ({type(exc).__name__})", source=text) from None
        return _parse_toml(content, text, _seen)
    raise PolicyError(
        f"no such policy; named policies are {', '.join(named_policies())}", source=text
    )


def options_of(policy: Policy) -> Iterable[ProfileOption]:
    """The policy's options in the standard's column order."""
    return [o for o in ProfileOption if o in policy.options]
