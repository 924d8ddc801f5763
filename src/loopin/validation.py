"""Field rules shared by the domain modules (names, lengths), each raising a clear error."""

from __future__ import annotations

import json
import re
from typing import Any

from loopin.errors import ValidationError

# A2I's documented loop-name pattern is lowercase, but AWS's own notebooks started loops
# with capitals and they were accepted: accept both and keep the case.
LOOP_NAME = re.compile(r"^[A-Za-z0-9](-*[A-Za-z0-9])*$")
RESOURCE_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
TEAM_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
# Plain ASCII addresses only: what every mail server delivers, and nothing a mail header
# parser could read as another recipient (no quotes, colons, parentheses or line breaks).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")+")


MAX_DB_INT = 2**63 - 1  # the largest id or time a database column holds (BIGINT)


def fits_db_int(value: int) -> bool:
    return isinstance(value, int) and -MAX_DB_INT <= value <= MAX_DB_INT


def check_name(value: str, *, what: str, pattern: re.Pattern[str] = RESOURCE_NAME) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 63 or not pattern.fullmatch(value):
        hint = "lowercase letters, digits and hyphens" if pattern is RESOURCE_NAME else "letters, digits and hyphens"
        raise ValidationError(
            f"{what} '{value}' is not valid: use 1 to 63 {hint}, starting and ending with a letter or digit."
        )
    return value


def check_text(value: str, *, what: str, min_len: int = 1, max_len: int) -> str:
    if not isinstance(value, str) or not min_len <= len(value) <= max_len:
        raise ValidationError(f"{what} must be {min_len} to {max_len} characters long.")
    return value


def check_email(value: str) -> str:
    email = value.strip().lower() if isinstance(value, str) else ""
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise ValidationError(f"'{value}' is not an e-mail address.")
    return email


# A task frame's extra origins: https, a host name (or IPv4 address) and an optional port;
# nothing else (no path, wildcard, user, query or other scheme), so the CSP built from them
# says exactly what it lets in.
ORIGIN = re.compile(r"(?i:https)://" + _LABEL + r"(?:\." + _LABEL + r")*(?::([0-9]{1,5}))?")
MAX_ORIGINS = 20


def check_origins(values: object, *, what: str = "Frame origin") -> list[str]:
    """Plain ``https://host[:port]`` origins, lowercased, without duplicates; a
    ValidationError names the first one that is not."""
    if not isinstance(values, list | tuple):
        raise ValidationError(f"{what}s must be a list of https://host[:port] origins.")
    if len(values) > MAX_ORIGINS:
        raise ValidationError(f"At most {MAX_ORIGINS} {what.lower()}s.")
    origins: list[str] = []
    for value in values:
        match = ORIGIN.fullmatch(value) if isinstance(value, str) and len(value) <= 253 else None
        if match is None or (match.group(1) is not None and not 1 <= int(match.group(1)) <= 65535):
            raise ValidationError(
                f"{what} {value!r} is not a plain https origin: write https://host or https://host:port, "
                "with no path, wildcard or other scheme."
            )
        origin = value.lower()
        if origin not in origins:
            origins.append(origin)
    return origins


# -- text that no UTF-8 database or page can hold ----------------------------------------
# A JSON "\ud800" escape decodes to a lone surrogate: a Python string that cannot be encoded
# as UTF-8. Refused at every door; stored JSON that holds one (from before it was refused)
# is read with the surrogates replaced, so a page can always be drawn.


_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads pairs what pairs; what is left is lone


def has_lone_surrogate(value: Any) -> bool:
    """Whether a string, or any key or string inside lists and dicts, holds a lone surrogate
    or a NUL character (which PostgreSQL text cannot hold either)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def refuse_lone_surrogates(value: Any, *, what: str) -> None:
    if has_lone_surrogate(value):
        raise ValidationError(
            f"{what} holds a NUL character or a lone UTF-16 surrogate (like \\ud800), which is not text."
        )


def without_lone_surrogates(value: Any) -> Any:
    """``value`` with each lone surrogate replaced by U+FFFD (for reading what is stored)."""
    if isinstance(value, str):
        if value.isascii():
            return value
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_lone_surrogates(v) for v in value]
    return value


def loads_stored(text: str) -> Any:
    """Stored JSON text (a loop's input, an answer) as values a page or a response can
    always encode."""
    value = json.loads(text)
    return without_lone_surrogates(value) if "\\u" in text else value
