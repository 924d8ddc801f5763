"""Booleans, choices, numbers (median) and free text (normalised majority, else the
answer closest to the others)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

from loopin.consolidation.fields import FieldResult, Given, Past, Weights, numeric_string
from loopin.consolidation.votes import kept, vote_weight, weighted_vote

WHITESPACE = re.compile(r"\s+")


def boolean_field(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    winner, _ = weighted_vote([(w, "true" if v else "false") for w, v in given], weights)
    value = winner == "true"
    workers = [w for w, v in given if v == value]
    return FieldResult("weighted-majority", value, len(workers) / len(given), workers)


def choices_field(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    keys: list[str] = []
    for _, v in given:
        keys.extend(k for k in v if k not in keys)
    value, objects, shares = {}, [], []
    for key in keys:
        votes = [(w, "true" if v.get(key, False) else "false") for w, v in given]
        winner, _ = weighted_vote(votes, weights)
        value[key] = winner == "true"
        workers = [w for w, x in votes if x == winner]
        shares.append(len(workers) / len(given))
        objects.append({"agreement": round(shares[-1], 4), "label": key, "workers": workers})
    agree_all = [w for w, v in given if all(bool(v.get(k, False)) == value[k] for k in keys)]
    return FieldResult("weighted-majority", value, statistics.fmean(shares), agree_all, objects)


def number_field(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    values = [float(v) for _, v in given]
    return _median_result(given, values, all(isinstance(v, int) for _, v in given))


def numeric_text_field(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    values = [numeric_string(v) or 0.0 for _, v in given]
    result = _median_result(given, values, all(x.is_integer() for x in values))
    result.value = str(result.value)
    return result


def _median_result(given: Sequence[tuple[str, Any]], values: list[float], integer: bool) -> FieldResult:
    median = statistics.median(values)
    spread = max(values) - min(values)
    scale = max(abs(median), 1e-9)
    # Agreement: share of workers within 5 % of the median (or equal to it when it is 0).
    near = [w for (w, _), x in zip(given, values, strict=True) if abs(x - median) <= 0.05 * scale]
    value: float | int = median
    if integer and float(median).is_integer():
        value = int(median)
    return FieldResult(
        "median",
        value,
        len(near) / len(values),
        near,
        [{"agreement": round(len(near) / len(values), 4), "range": spread, "workers": near}],
    )


def normalise_text(text: str) -> str:
    return WHITESPACE.sub(" ", text).strip().casefold()


def text_field(given: Given, weights: Weights, quorum: int, n: int, _past: Past, _iou: float) -> FieldResult:
    """The normalised answer most workers gave (at quorum, by weight), in the words of the
    most reliable of them; else the answer closest to the others by edit ratio."""
    total = sum(vote_weight(weights[w]) for w, _ in given)
    norm = [(w, normalise_text(v)) for w, v in given]
    winner, _ = weighted_vote(norm, weights)
    support = sum(vote_weight(weights[w]) for w, x in norm if x == winner)
    workers = [w for w, x in norm if x == winner]
    if len(given) > 1 and kept(support, total, quorum, len(given)) and len(workers) > 1:
        best = max((i for i, (w, x) in enumerate(norm) if x == winner), key=lambda i: weights[norm[i][0]])
        return FieldResult("normalised-majority", given[best][1], len(workers) / len(given), workers)
    if len(given) == 1:
        return FieldResult("normalised-majority", given[0][1], 1.0, [given[0][0]])
    similarity = [
        statistics.fmean(SequenceMatcher(None, x, y).ratio() for j, (_, y) in enumerate(norm) if j != i)
        for i, (_, x) in enumerate(norm)
    ]
    best = max(range(len(norm)), key=lambda i: (similarity[i] * weights[norm[i][0]], -i))
    return FieldResult("closest-to-others", given[best][1], similarity[best], [given[best][0]])
