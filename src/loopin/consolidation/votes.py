"""Votes weighted by reliability: the weight of a worker's vote, the quorum rule, the
weighted vote itself."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def vote_weight(reliability: float) -> float:
    """A worker's weight in a vote: the log-odds of their reliability (the optimal weights
    for a majority of independent voters), clamped to [0.51, 0.99] so that an unknown or
    poor worker still counts a little and a perfect one does not count infinitely."""
    r = min(0.99, max(0.51, reliability))
    return math.log(r / (1 - r))


def kept(support: float, total: float, quorum: int, n: int) -> bool:
    """ "At least ``quorum`` of ``n`` workers" by vote weight: the supporters hold at least
    (quorum - 1/2) / n of the total weight. With equal weights that is exactly ``quorum``
    workers; with reliabilities, one reliable worker can outweigh two poor ones."""
    return support >= total * (quorum - 0.5) / n - 1e-9


def weighted_vote(votes: Sequence[tuple[str, str]], weights: Mapping[str, float]) -> tuple[str, float]:
    """The label with the most weight, and its share of the weight. Ties go to the label of
    the most reliable worker among them, then to the first given."""
    tally: dict[str, float] = {}
    for worker, label in votes:
        tally[label] = tally.get(label, 0.0) + vote_weight(weights.get(worker, 1.0))
    best = max(tally.values())
    tied = [label for label in tally if math.isclose(tally[label], best)]
    if len(tied) > 1:
        ranked = sorted(votes, key=lambda wl: -weights.get(wl[0], 1.0))
        winner = next(label for _, label in ranked if label in tied)
    else:
        winner = tied[0]
    return winner, tally[winner] / sum(tally.values())


def known_weights(weights: Mapping[str, float]) -> bool:
    return any(w != 1.0 for w in weights.values())
