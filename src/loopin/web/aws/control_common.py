"""What the control plane's operations share: the operation record, epoch timestamps and
the paging of List operations."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from loopin.errors import ValidationError
from loopin.web.aws.fields import Fields

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 10  # SageMaker's default MaxResults for its List operations


@dataclass(frozen=True)
class Operation:
    run: Callable[[Fields], dict[str, Any]]
    not_found: str  # the code for a missing resource: waiters depend on it


def epoch(ms: int) -> float:
    return ms / 1000


def with_token(answer: dict[str, Any], token: str | None) -> dict[str, Any]:
    """The last page has no NextToken key at all (boto3's paginators stop on that)."""
    if token:
        answer["NextToken"] = token
    return answer


def paginate(
    body: Fields,
    rows: list[T],
    *,
    name: Callable[[T], str],
    created_ms: Callable[[T], int],
    sort_keys: dict[str, Callable[[T], Any]],
    default_sort: str,
) -> tuple[list[T], str | None]:
    """One page of ``rows`` per the List operations' common members: ``SortBy`` (one of
    ``sort_keys``), ``SortOrder`` (default Descending), ``NameContains``,
    ``CreationTimeAfter``/``Before`` (inclusive), ``MaxResults``, ``NextToken``.

    The token holds the last row's sort key, so a page never repeats or skips a row
    because another was created or deleted meanwhile."""
    sort_by = body.choice("SortBy", tuple(sort_keys), default=default_sort)
    order = body.choice("SortOrder", ("Ascending", "Descending"), default="Descending")
    limit = body.opt_int("MaxResults", low=1, high=100) or DEFAULT_PAGE_SIZE
    contains = (body.opt_text("NameContains", max_len=63) or "").lower()
    after, before = body.opt_time_ms("CreationTimeAfter"), body.opt_time_ms("CreationTimeBefore")
    scope = hashlib.sha256(json.dumps([sort_by, order, contains, after, before]).encode()).hexdigest()[:16]

    def key(row: T) -> list[Any]:
        return [sort_keys[sort_by](row), name(row)]

    rows = [
        row
        for row in rows
        if contains in name(row).lower()
        and (after is None or created_ms(row) >= after)
        and (before is None or created_ms(row) <= before)
    ]
    descending = order == "Descending"
    rows.sort(key=key, reverse=descending)
    token = body.opt_text("NextToken", max_len=8192)
    if token is not None:
        last = _decode_token(token, scope)
        rows = [row for row in rows if (key(row) < last if descending else key(row) > last)]
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    raw = json.dumps({"k": key(page[-1]), "s": scope}).encode()
    return page, base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, scope: str) -> list[Any]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        last, same_scope = list(raw["k"]), raw["s"] == scope
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("NextToken is not a token this server handed out.") from exc
    if not same_scope:
        raise ValidationError("NextToken belongs to a listing with other filters or sort order.")
    return last
