#!/usr/bin/env python
"""Consolidation against a simulated crowd: is the consolidated answer better than the best
single worker, and than an unweighted majority?

    .venv/bin/python bench/bench_consolidation.py              # 1,000 images (about a minute)
    .venv/bin/python bench/bench_consolidation.py --images 200 # quicker

Ground truth. The built-in detector (``nanodet-m-416-coco``) runs once on the bundled photos
(tests/data/*.jpg); its detections scoring at least ``--truth-score`` (0.25: this small
model's best scores on these photos are 0.5-0.8), after class-agnostic non-maximum
suppression at IoU 0.5, are the true boxes of each photo. A simulated image is an 800 x 600
mosaic of 2 x 2 tiles; each tile is a random crop (50-100 % of each side) of a random photo,
scaled by 0.3-1.0 into its 400 x 300 cell, with the truth boxes cropped alike (a box is
kept when at least 60 % of it stays in the crop) and jittered by 2 % of their size. This
gives 4-10 boxes per image, many of them small (under 32 px on a side).

Workers. Five honest worker profiles and one spammer. A *crew* is two honest workers and
the spammer (TaskCount 3, one of whom is a spammer); every one of the 10 possible crews
answers the same images, so each crew's "best single worker" is the best of its members
over the same images. An honest worker
draws each true box with the edges moved by a normal error of ``sigma`` times the box's
width (x) or height (y), misses it with probability ``miss`` (``miss_small`` for boxes under
32 px on their short side), gives it a wrong label with probability ``wrong``, and adds
Poisson(``extra``) boxes where there is nothing. The spammer draws 1-5 boxes anywhere, with
random labels. Profiles (``WORKERS``): careful, average, misses-small, sloppy, label-confuser.

Box methods, scored by F1 at IoU 0.5 (one-to-one, same label; summed over all images):

- each crew member alone; the best of them is the crew's "best single worker";
- ``majority``: ``consolidate`` without weights (kept when 2 of 3 drew it);
- ``consolidated``: ``consolidate`` as the server calls it with a flow's history (quorum
  automatic): a presence model (Dawid-Skene on "is there an object here?" questions) fitted
  without ground truth on this image's and the previous 200 images' answers decides each
  object, the workers' reliabilities from it weight the coordinates; the first images
  (fewer than 20 questions) fall back to the 2-of-3 quorum.
- ``with gold``: the same, as the server calls it once the workers have scored gold tasks
  in the flow: every worker (the spammer too) first answers the same ``--gold`` gold images
  (other images than the measured ones), scored by ``loopin.gold.score`` (box F1 at IoU
  0.5), and their reliabilities are ``worker_quality.shrunk_accuracy`` of those scores (the
  server's ``worker_reliability``): they weight the label votes and the coordinates, while
  the presence model still decides which objects are kept.
- ``ceiling`` (``--ceiling``, with gold): not a method but a bound. A presence rule only
  sees *who drew* each object; grouping the objects by that pattern, measuring with the
  truth which share of each pattern's objects is real and keeping the patterns above the
  F1-best threshold is the best any such rule can do with these objects, boxes and labels.
  With ``--adaptive`` (which simulates the model), a second bound also puts in the pattern
  whether the model's prediction has a box on the object.

Classification. Each image also gets an image-level class (the label of its largest true
box); honest workers answer it right with their ``accuracy``, the label confuser mixes two
classes up systematically, the spammer answers at random. ``majority`` is the vote of the
three; ``dawid-skene`` is ``consolidate`` with the previous 200 images as history (EM from
20 images on), as a loop's output is written by the server.

Adaptive reviewers (``--adaptive``, issue 15 item 3). A simulated model predicts each
image once (the same prediction for every crew): the truth drawn by a worker profile of its
own (``MODEL``: edges 4 %, misses 8 %, small boxes 35 %, wrong labels 4 %, 0.3 stray boxes),
on a ``HARD_SHARE`` of the images a much worse one (``MODEL_HARD``). Workers still draw from
scratch, independently of the prediction (in the product they correct the pre-filled boxes,
which would make them agree with the model more often: this set-up asks for more tasks than
the product would). The crew's answers come in the same shuffled order as for the fixed
TaskCount 3; adaptive reviewers take them one at a time and ask for the next while
``loopin.adaptive.decide`` (the server's own function) says so. The final answer is the
only answer when one was asked, else ``consolidate`` as the server calls it, with a
presence model fitted on the adaptive history (the previous 200 images' answers as asked).
Two populations: the crews above (two honest workers + the spammer), and crews of three
honest workers (the spammer paused by its gold accuracy, as the product does).
``--limits M,W`` sets the model and worker agreement limits (default: the server's).

``--jobs N`` runs the crews in N processes (same results: each crew has its own seed).

Results: bench/results/consolidation-<UTC time>.json and a Markdown summary on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loopin.adaptive import DEFAULT_MODEL_AGREEMENT, DEFAULT_WORKER_AGREEMENT, decide  # noqa: E402
from loopin.consolidation import (  # noqa: E402
    cluster_boxes,
    consolidate,
    iou,
    label_agreement,
    match_count,
    presence_model,
    presence_votes,
    weighted_vote,
)
from loopin.gold import score as gold_score  # noqa: E402
from loopin.inference import Detector  # noqa: E402
from loopin.worker_quality import LABEL_PRIOR_WEIGHT, shrunk_accuracy  # noqa: E402

CANVAS = (800, 600)
TILE = (400, 300)
SMALL_PX = 32
HISTORY = 200


@dataclass(frozen=True)
class Profile:
    name: str
    sigma: float  # edge error, fraction of the box's width / height
    miss: float
    miss_small: float
    wrong: float  # wrong label
    extra: float  # Poisson mean of boxes drawn where there is nothing
    accuracy: float  # image-level class


WORKERS = [
    Profile("careful", 0.06, 0.05, 0.15, 0.03, 0.10, 0.90),
    Profile("average", 0.10, 0.08, 0.25, 0.06, 0.20, 0.80),
    Profile("misses-small", 0.07, 0.05, 0.90, 0.04, 0.10, 0.85),
    Profile("sloppy", 0.14, 0.10, 0.30, 0.08, 0.30, 0.70),
    Profile("label-confuser", 0.08, 0.06, 0.25, 0.20, 0.15, 0.60),
]
SPAMMER = "spammer"
MODEL = Profile("model", 0.04, 0.08, 0.35, 0.04, 0.3, 1.0)
MODEL_HARD = Profile("model-hard", 0.08, 0.30, 0.70, 0.10, 1.0, 1.0)
HARD_SHARE = 0.3
MODEL_VOTER = "model"  # the worker id the model's prediction votes under (--model-vote)


def photo_truth(min_score: float) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """(width, height, boxes) per bundled photo: the detector's confident boxes, NMS-ed."""
    detector = Detector.builtin("nanodet-m-416-coco")
    photos = []
    for path in sorted((ROOT / "tests" / "data").glob("*.jpg")):
        result = detector.detect(path.read_bytes())
        kept: list[dict[str, Any]] = []
        for d in sorted(result.detections, key=lambda d: -d.score):
            if d.score < min_score:
                break
            b = {"label": d.label, "left": d.left, "top": d.top, "width": d.right - d.left, "height": d.bottom - d.top}
            if all(iou(b, k) < 0.5 for k in kept):
                kept.append(b)
        photos.append((result.image_width, result.image_height, kept))
    return photos


def make_image(rng: random.Random, photos: list[tuple[int, int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    boxes = []
    for cell in range(4):
        ox, oy = (cell % 2) * TILE[0], (cell // 2) * TILE[1]
        width, height, truth = rng.choice(photos)
        cw, ch = width * rng.uniform(0.5, 1.0), height * rng.uniform(0.5, 1.0)
        cx, cy = rng.uniform(0, width - cw), rng.uniform(0, height - ch)
        scale = min(TILE[0] / cw, TILE[1] / ch) * rng.uniform(0.3, 1.0)
        for b in truth:
            x1, y1 = max(b["left"], cx), max(b["top"], cy)
            x2, y2 = min(b["left"] + b["width"], cx + cw), min(b["top"] + b["height"], cy + ch)
            if x2 <= x1 or y2 <= y1 or (x2 - x1) * (y2 - y1) < 0.6 * b["width"] * b["height"]:
                continue
            w, h = (x2 - x1) * scale, (y2 - y1) * scale
            left = ox + (x1 - cx) * scale + rng.gauss(0, 0.02 * w)
            top = oy + (y1 - cy) * scale + rng.gauss(0, 0.02 * h)
            w, h = w * (1 + rng.gauss(0, 0.02)), h * (1 + rng.gauss(0, 0.02))
            if w >= 4 and h >= 4:
                boxes.append({"label": b["label"], "left": left, "top": top, "width": w, "height": h})
    return [_rounded(b) for b in boxes]


def _rounded(b: dict[str, Any]) -> dict[str, Any]:
    return {"height": round(b["height"]), "label": b["label"], "left": round(b["left"]), "top": round(b["top"]),
            "width": round(b["width"])}  # fmt: skip


def honest_answer(
    rng: random.Random, p: Profile, truth: list[dict[str, Any]], labels: list[str]
) -> list[dict[str, Any]]:
    drawn = []
    for b in truth:
        small = min(b["width"], b["height"]) < SMALL_PX
        if rng.random() < (p.miss_small if small else p.miss):
            continue
        x1 = b["left"] + rng.gauss(0, p.sigma * b["width"])
        x2 = b["left"] + b["width"] + rng.gauss(0, p.sigma * b["width"])
        y1 = b["top"] + rng.gauss(0, p.sigma * b["height"])
        y2 = b["top"] + b["height"] + rng.gauss(0, p.sigma * b["height"])
        label = b["label"] if rng.random() >= p.wrong else rng.choice([x for x in labels if x != b["label"]])
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            drawn.append(_rounded({"label": label, "left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}))
    for _ in range(_poisson(rng, p.extra)):
        drawn.append(_random_box(rng, labels))
    return drawn


def spam_answer(rng: random.Random, labels: list[str]) -> list[dict[str, Any]]:
    return [_random_box(rng, labels) for _ in range(rng.randint(1, 5))]


def _random_box(rng: random.Random, labels: list[str]) -> dict[str, Any]:
    w, h = rng.uniform(10, 300), rng.uniform(10, 250)
    left, top = rng.uniform(0, CANVAS[0] - w), rng.uniform(0, CANVAS[1] - h)
    return _rounded({"label": rng.choice(labels), "left": left, "top": top, "width": w, "height": h})


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def model_prediction(rng: random.Random, truth: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """The simulated model's boxes for an image (what a loop's input pre-fills)."""
    return honest_answer(rng, MODEL_HARD if rng.random() < HARD_SHARE else MODEL, truth, labels)


@dataclass(frozen=True)
class Gold:
    """What the server knows of each worker once they answered the gold images: the
    reliability (``worker_reliability``) and the accuracy at labelling boxes
    (``worker_label_reliability``)."""

    reliability: dict[str, float]
    labelling: dict[str, float]


def gold_knowledge(seed: int, gold_images: list[list[dict[str, Any]]], labels: list[str]) -> Gold:
    reliability, labelling = {}, {}
    for index, name in enumerate([*(p.name for p in WORKERS), SPAMMER]):
        rng = random.Random(seed + index)
        profile = next((p for p in WORKERS if p.name == name), None)
        scores, same, matched = [], 0, 0
        for truth in gold_images:
            drawn = spam_answer(rng, labels) if profile is None else honest_answer(rng, profile, truth, labels)
            scores.append(gold_score(wrap(drawn), {"annotatedResult": {"boundingBoxes": truth}}))
            s, m = label_agreement(drawn, truth)
            same, matched = same + s, matched + m
        reliability[name] = round(shrunk_accuracy(sum(scores), len(scores)), 4)
        labelling[name] = round(shrunk_accuracy(same, matched, LABEL_PRIOR_WEIGHT), 4)
    return Gold(reliability, labelling)


def class_answer(rng: random.Random, p: Profile | None, truth: str, classes: list[str]) -> str:
    if p is None:
        return rng.choice(classes)
    if rng.random() < p.accuracy:
        return truth
    if p.name == "label-confuser":  # mixes up each class with one other, always the same
        return classes[(classes.index(truth) + 1) % len(classes)]
    return rng.choice([c for c in classes if c != truth])


def wrap(boxes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "annotatedResult": {"boundingBoxes": boxes, "inputImageProperties": {"height": CANVAS[1], "width": CANVAS[0]}}
    }


class Score:
    def __init__(self) -> None:
        self.tp = self.found = self.truth = 0

    def add(self, found: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
        self.tp += match_count(found, truth)
        self.found += len(found)
        self.truth += len(truth)

    def f1(self) -> float:
        return 2 * self.tp / (self.found + self.truth) if self.found + self.truth else 1.0

    def as_dict(self) -> dict[str, Any]:
        precision = self.tp / self.found if self.found else 1.0
        recall = self.tp / self.truth if self.truth else 1.0
        return {"f1": round(self.f1(), 4), "precision": round(precision, 4), "recall": round(recall, 4),
                "tp": self.tp, "found": self.found, "truth": self.truth}  # fmt: skip


@dataclass(frozen=True)
class Adaptive:
    predictions: list[list[dict[str, Any]]]  # the model's boxes per image
    model_limit: float
    worker_limit: float


def run_crew(
    crew: list[str],
    images: list[list[dict[str, Any]]],
    labels: list[str],
    seed: int,
    *,
    classes: bool = True,
    adaptive: Adaptive | None = None,
    model_vote: bool = False,
    gold: Gold | None = None,
    with_ceiling: bool = False,
) -> dict[str, Any]:
    rng = random.Random(seed)
    profiles = {p.name: p for p in WORKERS}
    per_worker = {name: Score() for name in crew}
    majority, weighted, with_gold = Score(), Score(), Score()
    ceiling = PatternCeiling() if with_ceiling and gold is not None else None
    model_ceiling = PatternCeiling() if ceiling is not None and adaptive is not None else None
    class_right = {"majority": 0, "dawid-skene": 0}
    methods: dict[str, int] = {}
    questions: list[list[list[tuple[str, str]]]] = []  # per image: its present/absent questions
    class_items: list[list[tuple[str, dict[str, Any]]]] = []
    timings: dict[str, list[float]] = {"majority": [], "consolidated": [], "dawid-skene": []}
    adaptive_score, adaptive_tasks, reasons = Score(), Counter[int](), Counter[str]()
    adaptive_questions: list[list[list[tuple[str, str]]]] = []
    voted = Score()  # --model-vote: the model's prediction as one more vote
    voted_questions: list[list[list[tuple[str, str]]]] = []
    for index, truth in enumerate(images):
        order = crew[:]
        rng.shuffle(order)
        answers = []
        for name in order:
            drawn = spam_answer(rng, labels) if name == SPAMMER else honest_answer(rng, profiles[name], truth, labels)
            per_worker[name].add(drawn, truth)
            answers.append((name, wrap(drawn)))
        # What consolidate(answers, history=<the previous 200 loops>) computes in the server,
        # with each loop's present/absent questions computed once instead of every time.
        questions.append(presence_votes(answers))
        model = presence_model([q for item in questions[-HISTORY - 1 :] for q in item])
        reliability = model.reliability() if model is not None else {}
        t = time.perf_counter()
        plain = consolidate(answers)
        timings["majority"].append(time.perf_counter() - t)
        majority.add(plain.answer_content["annotatedResult"]["boundingBoxes"], truth)
        t = time.perf_counter()
        result = consolidate(answers, presence=model)
        timings["consolidated"].append(time.perf_counter() - t)
        weighted.add(result.answer_content["annotatedResult"]["boundingBoxes"], truth)
        if gold is not None:
            graded = consolidate(
                answers,
                presence=model,
                reliability={name: gold.reliability[name] for name in crew},
                label_reliability={name: gold.labelling[name] for name in crew},
            )
            with_gold.add(graded.answer_content["annotatedResult"]["boundingBoxes"], truth)
            if ceiling is not None:
                ceiling.add_image(answers, truth, gold)
            if model_ceiling is not None and adaptive is not None:
                model_ceiling.add_image(answers, truth, gold, adaptive.predictions[index])
        if model_vote and adaptive is not None:
            with_model = [*answers, (MODEL_VOTER, wrap(adaptive.predictions[index]))]
            voted_questions.append(presence_votes(with_model))
            fitted = presence_model([q for item in voted_questions[-HISTORY - 1 :] for q in item])
            voted.add(
                consolidate(with_model, presence=fitted).answer_content["annotatedResult"]["boundingBoxes"], truth
            )
        if adaptive is not None:
            asked, why = ask_adaptively(answers, adaptive.predictions[index], adaptive)
            adaptive_tasks[len(asked)] += 1
            reasons[why] += 1
            adaptive_questions.append(presence_votes(asked))
            if len(asked) == 1:  # one answer: output.json holds it alone
                final = asked[0][1]
            else:
                fitted = presence_model([q for item in adaptive_questions[-HISTORY - 1 :] for q in item])
                final = consolidate(asked, presence=fitted).answer_content
            adaptive_score.add(final["annotatedResult"]["boundingBoxes"], truth)
        if not classes:
            continue

        largest = max(truth, key=lambda b: b["width"] * b["height"])["label"]
        votes = [(n, {"category": {"label": class_answer(rng, profiles.get(n), largest, labels)}}) for n in order]
        plain_class = consolidate(votes).answer_content["category"]["label"]
        t = time.perf_counter()
        em = consolidate(votes, history=class_items[-HISTORY:])
        timings["dawid-skene"].append(time.perf_counter() - t)
        methods[em.fields["category"].method] = methods.get(em.fields["category"].method, 0) + 1
        class_right["majority"] += plain_class == largest
        class_right["dawid-skene"] += em.answer_content["category"]["label"] == largest
        class_items.append(votes)
    honest = [n for n in crew if n != SPAMMER]
    best = max(honest, key=lambda n: per_worker[n].f1())
    extra: dict[str, Any] = {}
    if adaptive is not None:
        extra["adaptive"] = {
            **adaptive_score.as_dict(),
            "tasks_per_image": round(sum(k * v for k, v in adaptive_tasks.items()) / len(images), 3),
            "images_by_tasks": dict(sorted(adaptive_tasks.items())),
            "last_decision": dict(reasons.most_common()),
            "share_of_fixed3_f1": round(adaptive_score.f1() / weighted.f1(), 4) if weighted.f1() else None,
        }
    if gold is not None:
        extra["with_gold"] = {
            **with_gold.as_dict(),
            "reliability": {name: gold.reliability[name] for name in crew},
            "labelling": {name: gold.labelling[name] for name in crew},
            "gain_over_best_single_points": round(100 * (with_gold.f1() - per_worker[best].f1()), 2),
        }
        if ceiling is not None:
            extra["ceiling"] = ceiling.best(per_worker[best].f1())
        if model_ceiling is not None:
            extra["ceiling_with_model"] = model_ceiling.best(per_worker[best].f1())
    if model_vote:
        extra["with_model_vote"] = {
            **voted.as_dict(),
            "gain_over_best_single_points": round(100 * (voted.f1() - per_worker[best].f1()), 2),
        }
    return extra | {
        "crew": crew,
        "workers": {n: per_worker[n].as_dict() for n in crew},
        "best_single_worker": best,
        "best_single_f1": round(per_worker[best].f1(), 4),
        "majority": majority.as_dict(),
        "consolidated": weighted.as_dict(),
        "gain_over_best_single_points": round(100 * (weighted.f1() - per_worker[best].f1()), 2),
        "gain_over_majority_points": round(100 * (weighted.f1() - majority.f1()), 2),
        "reliability_at_end": {w: round(v, 3) for w, v in reliability.items()},
        "class_accuracy": {k: round(v / len(images), 4) for k, v in class_right.items()} if classes else None,
        "class_methods": methods,
        "ms_per_image": {k: round(1000 * statistics.fmean(v), 3) for k, v in timings.items() if v},
    }


def ask_adaptively(
    answers: list[tuple[str, dict[str, Any]]], prediction: list[dict[str, Any]], adaptive: Adaptive
) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """The answers adaptive reviewers ask for (a prefix of the crew's order), and why they stopped."""
    asked = answers[:1]
    while True:
        decision = decide(
            asked,
            prediction,
            task_count=len(answers),
            model_limit=adaptive.model_limit,
            worker_limit=adaptive.worker_limit,
        )
        if not decision.add:
            return asked, decision.reason
        asked = answers[: len(asked) + 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--truth-score", type=float, default=0.25)
    parser.add_argument("--adaptive", action="store_true", help="also measure adaptive reviewers (two populations)")
    parser.add_argument(
        "--limits", default=f"{DEFAULT_MODEL_AGREEMENT},{DEFAULT_WORKER_AGREEMENT}", help="adaptive limits M,W"
    )
    parser.add_argument(
        "--model-vote", action="store_true", help="with --adaptive: also the model's prediction as a fourth vote"
    )
    parser.add_argument("--no-classes", action="store_true", help="skip image classification (Dawid-Skene)")
    parser.add_argument("--gold", type=int, default=20, help="gold images each worker answers first (0: no gold)")
    parser.add_argument("--jobs", type=int, default=1, help="processes to run the crews in")
    parser.add_argument(
        "--ceiling", action="store_true", help="with gold: also the best F1 a rule by who drew each box could reach"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    photos = photo_truth(args.truth_score)
    labels = sorted({b["label"] for _, _, boxes in photos for b in boxes})
    images = []
    while len(images) < args.images:
        truth = make_image(rng, photos)
        if truth:
            images.append(truth)
    counts = [len(t) for t in images]
    small = sum(1 for t in images for b in t if min(b["width"], b["height"]) < SMALL_PX)
    adaptive = None
    if args.adaptive:
        model_rng = random.Random(args.seed + 1000)
        model_limit, worker_limit = (float(x) for x in args.limits.split(","))
        adaptive = Adaptive([model_prediction(model_rng, t, labels) for t in images], model_limit, worker_limit)
    gold = None
    if args.gold:
        gold_rng = random.Random(args.seed + 2000)
        gold_images = [t for t in (make_image(gold_rng, photos) for _ in range(args.gold * 2)) if t][: args.gold]
        gold = gold_knowledge(args.seed + 3000, gold_images, labels)
    started = time.perf_counter()
    names = [p.name for p in WORKERS]
    runs = [
        (
            [a, b, SPAMMER],
            args.seed + i,
            {"classes": not args.no_classes, "model_vote": args.model_vote, "gold": gold, "with_ceiling": args.ceiling},
        )
        for i, (a, b) in enumerate(itertools.combinations(names, 2))
    ]
    if adaptive is not None:
        runs += [
            (list(trio), args.seed + 100 + i, {"classes": False})
            for i, trio in enumerate(itertools.combinations(names, 3))
        ]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(functools.partial(_run_crew, images, labels, adaptive), runs))
    crews = [c for c in done if SPAMMER in c["crew"]]
    honest_crews = [c for c in done if SPAMMER not in c["crew"]]
    elapsed = time.perf_counter() - started
    gains = [c["gain_over_best_single_points"] for c in crews]
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "images": args.images,
        "seed": args.seed,
        "truth_score": args.truth_score,
        "photos": [{"width": w, "height": h, "boxes": b} for w, h, b in photos],
        "labels": labels,
        "boxes_per_image": {
            "mean": round(statistics.fmean(counts), 2),
            "min": min(counts),
            "max": max(counts),
            "small_share": round(small / sum(counts), 3),
        },  # fmt: skip
        "profiles": {p.name: asdict_profile(p) for p in WORKERS},
        "gold_images_per_worker": args.gold,
        "gold": dataclasses.asdict(gold) if gold else None,
        "crews": crews,
        "honest_crews": honest_crews,
        "adaptive_limits": {"model": adaptive.model_limit, "worker": adaptive.worker_limit} if adaptive else None,
        "model_f1": model_f1(adaptive.predictions, images) if adaptive else None,
        "gain_over_best_single_points": {
            "mean": round(statistics.fmean(gains), 2),
            "min": min(gains),
            "max": max(gains),
            "crews_at_least_5": sum(g >= 5 for g in gains),
        },  # fmt: skip
        "elapsed_s": round(elapsed, 1),
        "jobs": args.jobs,
    }
    if gold is not None:
        gold_gains = [c["with_gold"]["gain_over_best_single_points"] for c in crews]
        report["gain_with_gold_over_best_single_points"] = {
            "mean": round(statistics.fmean(gold_gains), 2),
            "min": min(gold_gains),
            "max": max(gold_gains),
            "crews_at_least_5": sum(g >= 5 for g in gold_gains),
        }  # fmt: skip
        if args.ceiling:
            for key in ("ceiling", "ceiling_with_model"):
                if key in crews[0]:
                    gains = [c[key]["gain_over_best_single_points"] for c in crews]
                    report[f"{key}_gain_mean_points"] = round(statistics.fmean(gains), 2)
    out = ROOT / "bench" / "results" / f"consolidation-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    print(f"\nresults: {out.relative_to(ROOT)}")


class PatternCeiling:
    """The best box F1 any rule could reach that keeps or drops an object by *who drew it*
    (the votes are all a presence model sees), with the objects, fused boxes and labels as
    consolidation with gold makes them: per pattern of drawers, the share of its objects
    that are real is measured against the truth (which no real rule has), the patterns at
    or above a threshold are kept, and the threshold giving the best F1 is taken. With the
    model's prediction given, whether it has a box on the object (IoU 0.5) is part of the
    pattern: the bound for a rule that also sees the model."""

    def __init__(self) -> None:
        self.images: list[tuple[list[tuple[tuple[str, ...], dict[str, Any]]], list[dict[str, Any]]]] = []
        self.real: Counter[tuple[str, ...]] = Counter()
        self.seen: Counter[tuple[str, ...]] = Counter()

    def add_image(
        self,
        answers: list[tuple[str, dict[str, Any]]],
        truth: list[dict[str, Any]],
        gold: Gold,
        prediction: list[dict[str, Any]] | None = None,
    ) -> None:
        given = [(w, a["annotatedResult"]["boundingBoxes"]) for w, a in answers]
        objects = []
        for cluster in cluster_boxes(given, gold.reliability):
            label, _ = weighted_vote([(w, b["label"]) for w, b in cluster.members], gold.labelling)
            box = {**cluster.fused(gold.reliability), "label": label}
            pattern = tuple(sorted(w for w, _ in cluster.members))
            if prediction is not None and any(iou(box, p) >= 0.5 for p in prediction):
                pattern += (MODEL_VOTER,)
            objects.append((pattern, box))
            self.seen[pattern] += 1
            self.real[pattern] += any(t["label"] == label and iou(box, t) >= 0.5 for t in truth)
        self.images.append((objects, truth))

    def best(self, best_single: float) -> dict[str, Any]:
        results = []
        for threshold in (x / 20 for x in range(1, 20)):
            kept = {p for p in self.seen if self.real[p] / self.seen[p] >= threshold}
            score = Score()
            for objects, truth in self.images:
                score.add([box for pattern, box in objects if pattern in kept], truth)
            results.append((score.f1(), threshold, score))
        f1, threshold, score = max(results, key=lambda r: r[0])
        return {**score.as_dict(), "threshold": threshold,
                "gain_over_best_single_points": round(100 * (f1 - best_single), 2)}  # fmt: skip


def _run_crew(
    images: list[list[dict[str, Any]]],
    labels: list[str],
    adaptive: Adaptive | None,
    run: tuple[list[str], int, dict[str, Any]],
) -> dict[str, Any]:
    crew, seed, options = run
    return run_crew(crew, images, labels, seed, adaptive=adaptive, **options)


def model_f1(predictions: list[list[dict[str, Any]]], images: list[list[dict[str, Any]]]) -> float:
    score = Score()
    for found, truth in zip(predictions, images, strict=True):
        score.add(found, truth)
    return round(score.f1(), 4)


def asdict_profile(p: Profile | None) -> dict[str, Any]:
    if p is None:
        return {"profile": "random boxes, random labels"}
    return {"sigma": p.sigma, "miss": p.miss, "miss_small": p.miss_small, "wrong": p.wrong, "extra": p.extra}


def markdown(r: dict[str, Any]) -> str:
    b = r["boxes_per_image"]
    lines = [
        f"{r['images']} images, {b['mean']} true boxes per image ({b['min']}-{b['max']}; "
        f"{100 * b['small_share']:.0f} % under {SMALL_PX} px); each crew: 2 honest workers + the spammer",
        "",
        "| crew (+ spammer) | best single worker F1 | unweighted majority F1 | consolidated F1 | gain vs best single"
        " | vs majority | class acc. majority | class acc. Dawid-Skene |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in r["crews"]:
        names = " + ".join(n for n in c["crew"] if n != SPAMMER)
        classes = c["class_accuracy"] or {"majority": math.nan, "dawid-skene": math.nan}
        lines.append(
            f"| {names} | {c['best_single_f1']:.3f} ({c['best_single_worker']}) | {c['majority']['f1']:.3f} "
            f"| **{c['consolidated']['f1']:.3f}** | {c['gain_over_best_single_points']:+.1f} "
            f"| {c['gain_over_majority_points']:+.1f} | {classes['majority']:.3f} "
            f"| {classes['dawid-skene']:.3f} |"
        )
    g = r["gain_over_best_single_points"]
    lines += [
        "",
        f"Gain over the best single worker: mean {g['mean']:+.1f} points (min {g['min']:+.1f}, max {g['max']:+.1f}); "
        f"{g['crews_at_least_5']} of {len(r['crews'])} crews at +5 or more. Elapsed {r['elapsed_s']} s.",
        f"ms per image (first crew): {r['crews'][0]['ms_per_image']}",
    ]
    if r.get("gold"):
        known = r["gold"]
        lines += ["", f"With gold ({r['gold_images_per_worker']} gold images per worker; reliability / labelling: "
                  + ", ".join(f"{k} {v:.3f} / {known['labelling'][k]:.3f}" for k, v in known["reliability"].items())
                  + ")", "",
                  "| crew (+ spammer) | best single worker F1 | consolidated F1 | with gold: F1 (P / R) "
                  "| gain vs best single |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        for c in r["crews"]:
            v = c["with_gold"]
            lines.append(
                f"| {' + '.join(n for n in c['crew'] if n != SPAMMER)} | {c['best_single_f1']:.3f} "
                f"| {c['consolidated']['f1']:.3f} | **{v['f1']:.3f}** ({v['precision']:.3f} / {v['recall']:.3f}) "
                f"| {v['gain_over_best_single_points']:+.1f} |"
            )
        if "ceiling" in r["crews"][0]:
            lines += ["", "| crew (+ spammer) | with gold: gain | ceiling of a rule by who drew each box: F1 (P / R) | "
                      "gain | threshold |", "|---|---:|---:|---:|---:|"]  # fmt: skip
            for c in r["crews"]:
                v = c["ceiling"]
                lines.append(
                    f"| {' + '.join(n for n in c['crew'] if n != SPAMMER)} "
                    f"| {c['with_gold']['gain_over_best_single_points']:+.1f} "
                    f"| {v['f1']:.3f} ({v['precision']:.3f} / {v['recall']:.3f}) "
                    f"| {v['gain_over_best_single_points']:+.1f} | {v['threshold']:.2f} |"
                )
            lines.append(f"\nCeiling: mean {r['ceiling_gain_mean_points']:+.1f} points over the best single worker.")
            if "ceiling_with_model_gain_mean_points" in r:
                lines.append(
                    "Ceiling of a rule that also sees whether the model has a box on the object: mean "
                    f"{r['ceiling_with_model_gain_mean_points']:+.1f} points ("
                    + ", ".join(f"{c['ceiling_with_model']['gain_over_best_single_points']:+.1f}" for c in r["crews"])
                    + ")."
                )
        g = r["gain_with_gold_over_best_single_points"]
        lines.append(f"\nWith gold: mean {g['mean']:+.1f} points (min {g['min']:+.1f}, max {g['max']:+.1f}); "
                     f"{g['crews_at_least_5']} of {len(r['crews'])} crews at +5 or more.")  # fmt: skip
    if r["crews"] and "with_model_vote" in r["crews"][0]:
        lines += ["", "| crew (+ spammer) | consolidated F1 | + the model's vote: F1 (P / R) | gain vs best single |",
                  "|---|---:|---:|---:|"]  # fmt: skip
        for c in r["crews"]:
            v = c["with_model_vote"]
            lines.append(
                f"| {' + '.join(n for n in c['crew'] if n != SPAMMER)} | {c['consolidated']['f1']:.3f} "
                f"| {v['f1']:.3f} ({v['precision']:.3f} / {v['recall']:.3f}) | {v['gain_over_best_single_points']:+.1f} |"
            )
    if r["adaptive_limits"]:
        lines += adaptive_markdown(r)
    return "\n".join(lines)


def adaptive_markdown(r: dict[str, Any]) -> list[str]:
    limits = r["adaptive_limits"]
    lines = [
        "",
        f"Adaptive reviewers, limits model {limits['model']} / workers {limits['worker']}; "
        f"the simulated model's own F1 {r['model_f1']:.3f}",
        "",
        "| crew | fixed 3: F1 | adaptive: F1 | share of fixed-3 F1 | tasks per image | images with 1 / 2 / 3 tasks |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for population in ("crews", "honest_crews"):
        rows = r[population]
        for c in rows:
            a = c["adaptive"]
            by = a["images_by_tasks"]
            lines.append(
                f"| {' + '.join(c['crew'])} | {c['consolidated']['f1']:.3f} | {a['f1']:.3f} "
                f"| {100 * a['share_of_fixed3_f1']:.1f} % | {a['tasks_per_image']:.2f} "
                f"| {by.get(1, 0)} / {by.get(2, 0)} / {by.get(3, 0)} |"
            )
        if rows:
            tasks = statistics.fmean(c["adaptive"]["tasks_per_image"] for c in rows)
            share = statistics.fmean(c["adaptive"]["share_of_fixed3_f1"] for c in rows)
            worst = min(c["adaptive"]["share_of_fixed3_f1"] for c in rows)
            lines.append(
                f"| **mean of {population.replace('_', ' ')}** | | | **{100 * share:.1f} %** (min {100 * worst:.1f} %) "
                f"| **{tasks:.2f}** | |"
            )
    return lines


if __name__ == "__main__":
    main()
