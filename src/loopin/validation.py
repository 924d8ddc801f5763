"""Field rules shared by the domain modules (names, lengths), each raising a clear error."""

from __future__ import annotations

import re

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
