"""What of a person's name identifies them: its usual spellings and its telling parts."""

from __future__ import annotations

#: Shorter values and name parts identify no one reliably (and would match everywhere).
MIN_LENGTH = 3

# Tokens of a name that say nothing about the person (titles, suffixes, particles).
NOT_NAME_PARTS = frozenset(
    {
        "DR", "MR", "MRS", "MS", "MX", "MISS", "JR", "SR", "II", "III", "IV", "PROF", "PHD",
        "MD", "REV", "SIR", "DDS", "DMD", "RN", "ESQ", "VAN", "VON", "DER", "DEN", "DEL",
        "DES", "DOS", "DAS", "LA", "LE", "DE", "DI", "DU", "DA",
    }
)  # fmt: skip

# Values that say nothing (placeholders), and department words that name no place: an
# identifier made only of these is skipped, so that verification does not reject every
# output that mentions "RADIOLOGY".
PLACEHOLDER_WORDS = frozenset(
    {
        "none", "unknown", "unk", "na", "n", "a", "nil", "null", "anonymous", "anonymized",
        "anonymised", "anon", "removed", "redacted", "deidentified", "blank", "empty",
        "patient", "test",
    }
)  # fmt: skip
# Placeholder words that are no one's name, even beside a real one ("DOE^PATIENT"). Words
# that are also surnames (Blank, Null, ...) are not here: they stay name parts.
NEVER_NAME_PARTS = frozenset(
    {"patient", "test", "anonymous", "anonymized", "anonymised", "anon", "unknown", "none",
     "removed", "redacted", "deidentified"}
)  # fmt: skip


def name_forms(family: str, given: str, middle: str) -> list[str]:
    """The usual spellings of a name without prefix and suffix, both orders."""
    if not (family and given):
        return []
    if not middle:
        return [f"{family} {given}", f"{given} {family}"]
    return [
        f"{family} {given} {middle}",
        f"{family} {given}",
        f"{given} {middle} {family}",
        f"{given} {family}",
    ]


def name_parts(part: str) -> list[str]:
    """A name component and its words, when long enough and not a title or particle."""
    found: list[str] = []
    if is_name_word(part):
        found.append(part)
    words = part.replace("-", " ").replace("'", " ").split()
    if len(words) > 1:
        found.extend(word for word in words if is_name_word(word))
    return found


def is_name_word(word: str) -> bool:
    cleaned = word.strip(" .,")
    if len(cleaned) < MIN_LENGTH or cleaned.upper() in NOT_NAME_PARTS:
        return False
    return cleaned.casefold() not in NEVER_NAME_PARTS


def dedupe_key(text: str) -> str:
    """Values that differ only in case and separators are the same identifier."""
    if text.isascii():  # the same words, found faster
        words = text.lower().encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()
    else:
        words = "".join(char if char.isalnum() else " " for char in text.casefold()).split()
    return " ".join(words)


# ASCII letters and digits kept, every other byte a space / deleted.
_ASCII_WORDS = bytes(byte if chr(byte).isalnum() else 0x20 for byte in range(128)) + bytes(
    [0x20] * 128
)
ASCII_NOT_ALNUM = bytes(byte for byte in range(256) if not chr(byte).isalnum() or byte > 127)
