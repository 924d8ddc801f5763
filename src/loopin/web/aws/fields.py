"""Reading AWS JSON request bodies: members by name, with the type and length checks that
botocore leaves to the server (it checks only required members, types and minimums)."""

from __future__ import annotations

import json
from typing import Any

from loopin.errors import ValidationError
from loopin.validation import refuse_lone_surrogates


def parse_object(body: bytes) -> Fields:
    """The body as a JSON object (an empty body is ``{}``)."""
    if not body.strip():
        return Fields({})
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValidationError(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object.")
    refuse_lone_surrogates(data, what="The request body")
    return Fields(data)


class Fields:
    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data = data
        self._path = path

    def _name(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def _get(self, name: str, kinds: type | tuple[type, ...], what: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None:
            if required:
                raise ValidationError(f"{self._name(name)} is required.")
            return None
        if not isinstance(value, kinds) or isinstance(value, bool):  # JSON true is not a number
            raise ValidationError(f"{self._name(name)} must be {what}.")
        return value

    def text(self, name: str, *, max_len: int = 1024) -> str:
        value = self.opt_text(name, max_len=max_len)
        if value is None:
            raise ValidationError(f"{self._name(name)} is required.")
        return value

    def opt_text(self, name: str, *, max_len: int = 1024) -> str | None:
        value: str | None = self._get(name, str, "a string", False)
        if value is not None and not 1 <= len(value) <= max_len:
            raise ValidationError(f"{self._name(name)} must be 1 to {max_len:,} characters long.")
        return value

    def opt_int(self, name: str, *, low: int, high: int) -> int | None:
        value: int | None = self._get(name, int, "a whole number", False)
        if value is not None and not low <= value <= high:
            raise ValidationError(f"{self._name(name)} must be from {low} to {high}.")
        return value

    def opt_number(self, name: str, *, low: float) -> float | None:
        value: float | None = self._get(name, (int, float), "a number", False)
        if value is not None and value < low:
            raise ValidationError(f"{self._name(name)} must be at least {low}.")
        return value

    def opt_time_ms(self, name: str) -> int | None:
        """A timestamp in epoch seconds (what boto3 sends on json 1.1) as epoch ms."""
        value = self._get(name, (int, float), "a timestamp in seconds since the epoch", False)
        return None if value is None else int(value * 1000)

    def obj(self, name: str) -> Fields:
        value = self.opt_obj(name)
        if value is None:
            raise ValidationError(f"{self._name(name)} is required.")
        return value

    def opt_obj(self, name: str) -> Fields | None:
        value = self._get(name, dict, "an object", False)
        return None if value is None else Fields(value, self._name(name))

    def opt_list(self, name: str, *, max_items: int) -> list[Any] | None:
        value: list[Any] | None = self._get(name, list, "a list", False)
        if value is not None and len(value) > max_items:
            raise ValidationError(f"{self._name(name)} has more than {max_items} items.")
        return value

    def objects(self, name: str, *, min_items: int, max_items: int) -> list[Fields]:
        items = self.opt_list(name, max_items=max_items) or []
        if len(items) < min_items:
            raise ValidationError(f"{self._name(name)} needs at least {min_items} item(s).")
        if not all(isinstance(item, dict) for item in items):
            raise ValidationError(f"{self._name(name)} must hold objects.")
        return [Fields(item, f"{self._name(name)}.{i + 1}") for i, item in enumerate(items)]

    def choice(self, name: str, choices: tuple[str, ...], *, default: str) -> str:
        value = self.opt_text(name) or default
        if value not in choices:
            raise ValidationError(f"{self._name(name)} must be one of {', '.join(choices)}.")
        return value
