"""Classification, single- and multi-label: Dawid-Skene EM with history, else a vote
weighted by reliability."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loopin.consolidation.fields import FieldResult, Given, Past, Weights, clamped_weight
from loopin.consolidation.votes import kept, known_weights, vote_weight, weighted_vote

MIN_EM_ITEMS = 20  # Dawid-Skene needs this many items (loops) of a field; fewer: weighted majority
EM_ITERATIONS = 50
PRIOR_STRENGTH = 2.0  # pseudo-answers a known reliability is worth in a confusion matrix


def dawid_skene(
    items: Sequence[Sequence[tuple[str, str]]],
    *,
    classes: Sequence[str],
    reliability: Mapping[str, float] | None = None,
    iterations: int = EM_ITERATIONS,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dawid-Skene EM: each worker has a confusion matrix (true class x given class), the
    classes a prior; returns the posterior over classes per item and the matrices. Starts
    from the weighted vote; a known reliability r adds ``PRIOR_STRENGTH`` pseudo-answers
    (r on the diagonal, the rest spread evenly) to the worker's matrix."""
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    workers = sorted({w for item in items for w, _ in item})
    windex = {w: i for i, w in enumerate(workers)}
    rel = {w: clamped_weight(reliability, w) if reliability and w in reliability else None for w in workers}
    obs = [(i, windex[w], index[label]) for i, item in enumerate(items) for w, label in item]
    item_idx = np.array([o[0] for o in obs])
    worker_idx = np.array([o[1] for o in obs])
    label_idx = np.array([o[2] for o in obs])
    posterior = np.full((len(items), k), 1e-6)
    np.add.at(posterior, (item_idx, label_idx), [rel[workers[j]] or 1.0 for j in worker_idx])
    posterior /= posterior.sum(axis=1, keepdims=True)
    prior_counts = np.full((len(workers), k, k), 0.01)
    for w, r in rel.items():
        if r is not None and k > 1:
            prior_counts[windex[w]] += PRIOR_STRENGTH * (1 - r) / (k - 1)
            prior_counts[windex[w]][np.diag_indices(k)] += PRIOR_STRENGTH * r - PRIOR_STRENGTH * (1 - r) / (k - 1)
    confusion = prior_counts
    for _ in range(iterations):
        class_prior = posterior.mean(axis=0) + 1e-6
        class_prior /= class_prior.sum()
        counts = prior_counts.copy()
        for c in range(k):  # counts[worker, true class c, given label] += P(item is c)
            np.add.at(counts[:, c, :], (worker_idx, label_idx), posterior[item_idx, c])
        confusion = counts / counts.sum(axis=2, keepdims=True)
        log_post = np.tile(np.log(class_prior), (len(items), 1))
        np.add.at(log_post, item_idx, np.log(confusion[worker_idx, :, label_idx]))
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        converged = np.abs(new - posterior).max() < 1e-6
        posterior = new
        if converged:
            break
    return posterior, {w: confusion[windex[w]] for w in workers}


def classify(
    votes: list[tuple[str, str]],
    past: list[list[tuple[str, str]]],
    weights: Mapping[str, float],
    reliability_known: bool,
) -> tuple[str, float, str, float | None]:
    """(label, agreement, method, posterior of the label or None)."""
    winner, _ = weighted_vote(votes, weights)
    agreement = sum(1 for _, label in votes if label == winner) / len(votes)
    items = [item for item in past if item] + [votes]
    classes = sorted({label for item in items for _, label in item})
    if len(items) < MIN_EM_ITEMS or len(classes) < 2:
        return winner, agreement, "weighted-majority", None
    posterior, _ = dawid_skene(items, classes=classes, reliability=weights if reliability_known else None)
    best = int(np.argmax(posterior[-1]))
    label = classes[best]
    return label, sum(1 for _, x in votes if x == label) / len(votes), "dawid-skene", float(posterior[-1][best])


def label_field(given: Given, weights: Weights, quorum: int, n: int, past: Past, _iou: float) -> FieldResult:
    votes = [(w, v["label"]) for w, v in given]
    history = [
        [(w, v["label"]) for w, v in item if isinstance(v, Mapping) and isinstance(v.get("label"), str)]
        for item in past
    ]
    label, agreement, method, confidence = classify(votes, history, weights, known_weights(weights))
    workers = [w for w, x in votes if x == label]
    obj: dict[str, Any] = {"agreement": round(agreement, 4), "label": label, "workers": workers}
    if confidence is not None:
        obj["posterior"] = round(confidence, 4)
    return FieldResult(method, {"label": label}, agreement, workers, [obj])


def labels_field(given: Given, weights: Weights, quorum: int, n: int, past: Past, _iou: float) -> FieldResult:
    """Multi-label: each category seen is a present/absent question, decided like a label
    (Dawid-Skene per category with history, else a weighted vote at quorum)."""
    sets = [(w, set(v["labels"])) for w, v in given]
    history = [
        [(w, set(v["labels"])) for w, v in item if isinstance(v, Mapping) and isinstance(v.get("labels"), list)]
        for item in past
    ]
    order: list[str] = []
    for _, v in given:
        for c in v["labels"]:
            if c not in order:
                order.append(c)
    total = sum(vote_weight(weights[w]) for w, _ in sets)
    chosen, objects, methods = [], [], set()
    for category in order:
        votes = [(w, "yes" if category in s else "no") for w, s in sets]
        past_votes = [[(w, "yes" if category in s else "no") for w, s in item] for item in history]
        support = sum(vote_weight(weights[w]) for w, s in sets if category in s)
        items = [v for v in past_votes if v] + [votes]
        if len(items) >= MIN_EM_ITEMS and {x for item in items for _, x in item} == {"no", "yes"}:
            posterior, _ = dawid_skene(
                items, classes=["no", "yes"], reliability=weights if known_weights(weights) else None
            )
            present = bool(posterior[-1][1] > 0.5)
            methods.add("dawid-skene")
        else:
            present = kept(support, total, quorum, len(sets))
            methods.add("weighted-majority")
        workers = [w for w, s in sets if (category in s) == present]
        objects.append(
            {"agreement": round(len(workers) / len(sets), 4), "label": category, "present": present, "workers": workers}
        )
        if present:
            chosen.append(category)
    # Agreement: mean Jaccard similarity of each worker's set with the consolidated one.
    final = set(chosen)
    agreement = statistics.fmean(len(s & final) / len(s | final) if s | final else 1.0 for _, s in sets)
    contributing = [w for w, s in sets if s & final or (not s and not final)]
    method = (
        "dawid-skene"
        if methods == {"dawid-skene"}
        else "weighted-majority"
        if methods == {"weighted-majority"}
        else "dawid-skene+weighted-majority"
    )
    return FieldResult(method, {"labels": chosen}, agreement, contributing, objects)
