"""Consolidation methods on hand-made answers (pure functions: no database)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from loopin.consolidation import (
    assignment,
    box_f1,
    consolidate,
    dawid_skene,
    default_quorum,
    estimate_reliability,
    iou,
    label_agreement,
    normalise_text,
    presence_model,
    presence_votes,
)


def box(label: str, left: int, top: int, width: int, height: int) -> dict:
    return {"height": height, "label": label, "left": left, "top": top, "width": width}


def boxes(*items: dict, modified: bool | None = None) -> dict:
    value: dict = {"boundingBoxes": list(items), "inputImageProperties": {"height": 400, "width": 600}}
    if modified is not None:
        value["initialValueModified"] = modified
    return {"annotatedResult": value}


CAR = box("car", 100, 100, 200, 100)
BIKE = box("bicycle", 400, 250, 60, 40)
SMALL = box("car", 500, 20, 16, 12)


def test_default_quorum_is_a_majority():
    assert [default_quorum(n) for n in (1, 2, 3)] == [1, 2, 2]


def test_assignment_is_optimal_on_random_rectangles():
    rng = np.random.default_rng(7)
    for _ in range(200):
        rows, cols = (int(x) for x in rng.integers(1, 6, 2))
        cost = rng.random((rows, cols))
        got = assignment(cost)
        assert len(got) == min(rows, cols)
        assert len({r for r, _ in got}) == len({c for _, c in got}) == len(got)
        if rows <= cols:
            best = min(sum(cost[i, p[i]] for i in range(rows)) for p in itertools.permutations(range(cols), rows))
        else:
            best = min(sum(cost[p[j], j] for j in range(cols)) for p in itertools.permutations(range(rows), cols))
        assert sum(cost[r, c] for r, c in got) == pytest.approx(best)


def test_iou():
    assert iou(CAR, CAR) == 1.0
    assert iou(CAR, BIKE) == 0.0
    assert iou(box("a", 0, 0, 10, 10), box("a", 5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_two_workers_who_agree_give_the_mean_box_with_full_agreement():
    moved = {**CAR, "left": 104, "width": 196}
    result = consolidate([("w1", boxes(CAR, BIKE)), ("w2", boxes(moved, BIKE))])
    value = result.answer_content["annotatedResult"]
    assert value["boundingBoxes"] == [box("car", 102, 100, 198, 100), BIKE]
    assert value["inputImageProperties"] == {"height": 400, "width": 600}
    assert result.fields["annotatedResult"].method == "weighted-box-fusion"
    assert result.workers == ["w1", "w2"]
    objects = result.fields["annotatedResult"].objects
    assert objects[0]["workers"] == ["w1", "w2"] and objects[0]["agreement"] == pytest.approx(iou(CAR, moved), abs=1e-4)
    assert objects[1]["agreement"] == 1.0
    assert result.not_consolidated == {}


def test_a_spammer_is_outvoted_and_not_a_contributor():
    spam = boxes(box("bicycle", 10, 300, 80, 80), box("car", 0, 0, 600, 400))
    result = consolidate([("good1", boxes(CAR, BIKE)), ("good2", boxes(CAR, BIKE)), ("spam", spam)])
    assert result.answer_content["annotatedResult"]["boundingBoxes"] == [CAR, BIKE]
    assert result.workers == ["good1", "good2"]
    # Two objects agreed by 2 of 3 (IoU 1), two seen by one worker only: (2/3 + 2/3) / 4.
    assert result.agreement == pytest.approx((2 / 3 + 2 / 3) / 4)


def test_the_worker_who_misses_small_boxes_is_covered_by_the_others_at_quorum_two():
    answers = [("a", boxes(CAR, SMALL)), ("b", boxes(CAR, SMALL)), ("misses", boxes(CAR))]
    assert consolidate(answers).answer_content["annotatedResult"]["boundingBoxes"] == [SMALL, CAR]
    # Quorum 3: only what everyone drew.
    assert consolidate(answers, quorum=3).answer_content["annotatedResult"]["boundingBoxes"] == [CAR]
    # A quorum above the number of answers is capped (a stopped loop with fewer answers).
    assert consolidate(answers[:1], quorum=3).quorum == 1


def test_reliability_weights_move_the_box_and_count_toward_the_quorum():
    far = {**CAR, "left": 140}
    result = consolidate([("sure", boxes(CAR)), ("unsure", boxes(far))], reliability={"sure": 0.9, "unsure": 0.1})
    assert result.answer_content["annotatedResult"]["boundingBoxes"][0]["left"] == 104
    # One reliable worker alone holds more than 2/3 of the weight: kept at quorum 2 of 3.
    answers = [("sure", boxes(CAR, SMALL)), ("b", boxes(CAR)), ("c", boxes(CAR))]
    weights = {"sure": 0.95, "b": 0.2, "c": 0.2}
    assert SMALL in consolidate(answers, reliability=weights).answer_content["annotatedResult"]["boundingBoxes"]
    assert SMALL not in consolidate(answers).answer_content["annotatedResult"]["boundingBoxes"]


def test_box_label_disagreement_is_one_object_with_the_majority_label():
    answers = [("a", boxes(CAR)), ("b", boxes(CAR)), ("c", boxes({**CAR, "label": "truck"}))]
    result = consolidate(answers)
    assert result.answer_content["annotatedResult"]["boundingBoxes"] == [CAR]
    assert result.workers == ["a", "b"]
    [obj] = result.fields["annotatedResult"].objects
    assert obj["otherLabels"] == ["truck"] and obj["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    # Two workers, two labels: the more reliable worker's label.
    tie = [("a", boxes(CAR)), ("c", boxes({**CAR, "label": "truck"}))]
    assert consolidate(tie, reliability={"a": 0.6, "c": 0.9}).answer_content["annotatedResult"]["boundingBoxes"] == [
        {**CAR, "label": "truck"}
    ]


def test_labelling_accuracy_settles_a_box_label_tie_instead_of_reliability():
    tie = [("a", boxes(CAR)), ("c", boxes({**CAR, "label": "truck"}))]
    reliability = {"a": 0.6, "c": 0.9}  # c draws better...
    labelling = {"a": 0.95, "c": 0.7}  # ...but a labels better
    for quorum in (None, 2):
        result = consolidate(tie, reliability=reliability, label_reliability=labelling, quorum=quorum)
        [kept] = result.answer_content["annotatedResult"]["boundingBoxes"]
        assert kept["label"] == "car"
    assert consolidate(tie, reliability=reliability).answer_content["annotatedResult"]["boundingBoxes"] == [
        {**CAR, "label": "truck"}
    ]


def test_label_agreement_matches_boxes_whatever_their_label():
    truth = [CAR, BIKE, SMALL]
    found = [{**CAR, "label": "truck"}, BIKE, box("car", 0, 300, 50, 50)]  # one mislabelled, one stray
    assert label_agreement(found, truth) == (1, 2)
    assert label_agreement([], truth) == (0, 0) and label_agreement(found, []) == (0, 0)


def test_initial_value_modified_is_the_majority_flag():
    answers = [("a", boxes(CAR, modified=True)), ("b", boxes(CAR, modified=False)), ("c", boxes(CAR, modified=True))]
    assert consolidate(answers).answer_content["annotatedResult"]["initialValueModified"] is True


def test_non_integer_boxes_keep_two_decimals():
    a, b = box("car", 0, 0, 10, 10), {**box("car", 0, 0, 10, 10), "left": 1.5}
    fused = consolidate([("a", boxes(a)), ("b", boxes(b))]).answer_content["annotatedResult"]["boundingBoxes"][0]
    assert fused["left"] == 0.75 and fused["width"] == 10.0 and isinstance(fused["top"], float)


def label(value: str) -> dict:
    return {"category": {"label": value}}


def test_label_majority_and_reliability_breaks_a_tie():
    result = consolidate([("a", label("cat")), ("b", label("dog")), ("c", label("cat"))])
    assert result.answer_content == {"category": {"label": "cat"}}
    assert result.fields["category"].method == "weighted-majority"
    assert result.fields["category"].agreement == pytest.approx(2 / 3)
    assert result.workers == ["a", "c"]
    tie = [("a", label("cat")), ("b", label("dog"))]
    assert consolidate(tie, reliability={"a": 0.6, "b": 0.9}).answer_content["category"]["label"] == "dog"
    assert consolidate(tie, reliability={"a": 0.9, "b": 0.6}).answer_content["category"]["label"] == "cat"


def test_dawid_skene_learns_a_worker_who_always_swaps_two_labels():
    rng = random.Random(3)
    truth = [rng.choice(["cat", "dog"]) for _ in range(60)]
    swap = {"cat": "dog", "dog": "cat"}
    history = []
    for t in truth:
        noisy = t if rng.random() < 0.7 else swap[t]
        history.append([("good", label(t)), ("noisy", label(noisy)), ("swapper", label(swap[t]))])
    # Now: good says cat, the two others say dog. Majority: dog; the swapper's dog means cat.
    now = [("good", label("cat")), ("noisy", label("dog")), ("swapper", label("dog"))]
    assert consolidate(now).answer_content["category"]["label"] == "dog"
    em = consolidate(now, history=history)
    assert em.fields["category"].method == "dawid-skene"
    assert em.answer_content["category"]["label"] == "cat"
    assert em.fields["category"].objects[0]["posterior"] > 0.9
    # Too little history: weighted majority.
    assert consolidate(now, history=history[:5]).fields["category"].method == "weighted-majority"


def test_dawid_skene_recovers_confusion_matrices():
    rng = random.Random(1)
    items, truth = [], []
    for _ in range(300):
        t = rng.choice("abc")
        truth.append(t)
        spam = rng.choice("abc")
        ok1 = t if rng.random() < 0.9 else rng.choice("abc")
        ok2 = t if rng.random() < 0.8 else rng.choice("abc")
        items.append([("ok1", ok1), ("ok2", ok2), ("spam", spam)])
    posterior, confusion = dawid_skene(items, classes=["a", "b", "c"])
    assert np.diag(confusion["ok1"]).min() > 0.85
    assert np.diag(confusion["spam"]).max() < 0.5
    accuracy = np.mean([["a", "b", "c"][int(np.argmax(p))] == t for p, t in zip(posterior, truth, strict=True)])
    assert accuracy > 0.9


def test_multi_label_keeps_categories_a_majority_chose():
    answers = [
        ("a", {"tags": {"labels": ["sky", "sea"]}}),
        ("b", {"tags": {"labels": ["sea", "sky", "boat"]}}),
        ("c", {"tags": {"labels": ["sea"]}}),
    ]
    result = consolidate(answers)
    assert result.answer_content == {"tags": {"labels": ["sky", "sea"]}}
    objects = {o["label"]: o for o in result.fields["tags"].objects}
    assert objects["boat"]["present"] is False and objects["boat"]["workers"] == ["a", "c"]
    assert result.fields["tags"].agreement == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)


def test_keypoints_median_per_label():
    def kp(*points: tuple[str, int, int]) -> dict:
        return {"pose": {"keypoints": [{"label": lb, "x": x, "y": y} for lb, x, y in points]}}

    answers = [("a", kp(("eye", 10, 10), ("nose", 20, 30))), ("b", kp(("eye", 12, 11))), ("c", kp(("eye", 50, 9)))]
    result = consolidate(answers)
    assert result.answer_content == {"pose": {"keypoints": [{"label": "eye", "x": 12, "y": 10}]}}
    assert result.fields["pose"].method == "keypoint-median"
    assert result.fields["pose"].objects[0]["workers"] == ["a", "b", "c"]


def test_text_normalised_majority_else_closest_to_the_others():
    result = consolidate([("a", {"t": "The  Cat"}), ("b", {"t": "the cat "}), ("c", {"t": "a dog"})])
    assert result.answer_content == {"t": "The  Cat"} and result.fields["t"].method == "normalised-majority"
    assert normalise_text("  A\tB  c ") == "a b c"
    result = consolidate([("a", {"t": "colour"}), ("b", {"t": "color"}), ("c", {"t": "zzzzzz"})])
    assert result.fields["t"].method == "closest-to-others"
    assert result.answer_content["t"] in ("colour", "color")


def test_numbers_and_sliders_take_the_median():
    result = consolidate([("a", {"n": 3}), ("b", {"n": 4}), ("c", {"n": 100})])
    assert result.answer_content == {"n": 4} and result.fields["n"].method == "median"
    assert consolidate([("a", {"n": 1.5}), ("b", {"n": 2})]).answer_content == {"n": 1.75}
    assert consolidate([("a", {"n": "3"}), ("b", {"n": "5"}), ("c", {"n": "4"})]).answer_content == {"n": "4"}


def test_checkboxes_and_booleans_take_the_majority():
    answers = [
        ("a", {"ok": {"on": True}, "flag": True}),
        ("b", {"ok": {"on": False}, "flag": True}),
        ("c", {"ok": {"on": True}, "flag": False}),
    ]
    result = consolidate(answers)
    assert result.answer_content == {"flag": True, "ok": {"on": True}}
    radio = [("a", {"r": {"x": True, "y": False}}), ("b", {"r": {"x": False, "y": True}}), ("c", {"r": {"x": True}})]
    assert consolidate(radio).answer_content == {"r": {"x": True, "y": False}}


def test_what_has_no_method_is_named_with_a_reason_and_the_rest_is_still_consolidated():
    polygon = {"polygons": [{"label": "car", "vertices": [{"x": 1, "y": 2}]}]}
    answers = [("a", {"p": polygon, "n": 1, "mixed": "x"}), ("b", {"p": polygon, "n": 3, "mixed": 2})]
    result = consolidate(answers)
    assert set(result.not_consolidated) == {"p", "mixed"}
    assert "polygons" in result.not_consolidated["p"]
    assert "different kinds" in result.not_consolidated["mixed"]
    assert result.answer_content == {"n": 2}
    document = result.to_json()
    assert set(document) == {
        "agreement",
        "answerContent",
        "method",
        "notConsolidated",
        "perField",
        "quorum",
        "workers",
    }
    assert document["method"] == {"n": "median"}
    nothing = consolidate([("a", {"p": polygon})])
    assert nothing.agreement is None and nothing.answer_content == {}
    assert consolidate([]).not_consolidated == {"*": "no answers"}


def _crowd_history(rng: random.Random, count: int) -> list:
    """Loops answered by a careful worker, one who misses small boxes, and a spammer."""
    items = []
    for _ in range(count):
        big = [box("car", rng.randint(0, 300), rng.randint(0, 200), 120, 80) for _ in range(2)]
        small = [box("car", rng.randint(400, 580), rng.randint(300, 380), 14, 12)]
        spam = [box("car", rng.randint(0, 500), rng.randint(0, 300), 60, 60) for _ in range(rng.randint(1, 3))]
        items.append([("careful", boxes(*big, *small)), ("misses", boxes(*big)), ("spam", boxes(*spam))])
    return items


def test_history_teaches_who_to_trust_when_only_one_worker_drew_a_box():
    history = _crowd_history(random.Random(9), 40)
    now = [("careful", boxes(CAR, SMALL)), ("misses", boxes(CAR)), ("spam", boxes(box("car", 0, 300, 50, 50)))]
    learned = consolidate(now, history=history)
    assert learned.fields["annotatedResult"].method == "weighted-box-fusion+dawid-skene"
    assert learned.answer_content["annotatedResult"]["boundingBoxes"] == [SMALL, CAR]
    small = learned.fields["annotatedResult"].objects[0]
    assert small["workers"] == ["careful"] and small["posterior"] > 0.9
    # An explicit quorum is a rule: two workers, whatever the history says.
    strict = consolidate(now, history=history, quorum=2)
    assert strict.answer_content["annotatedResult"]["boundingBoxes"] == [CAR]
    # The spammer's box alone is not an object.
    assert box("car", 0, 300, 50, 50) not in learned.answer_content["annotatedResult"]["boundingBoxes"]


def test_presence_model_reliabilities():
    questions = [q for item in _crowd_history(random.Random(2), 40) for q in presence_votes(item)]
    model = presence_model(questions)
    assert model is not None
    reliability = model.reliability()
    assert reliability["careful"] > reliability["misses"] > 0.6 > reliability["spam"]
    assert presence_model(questions[:5]) is None


def test_estimated_reliability_ranks_the_spammer_last():
    rng = random.Random(5)
    items = []
    for _ in range(30):
        truth = [box("car", rng.randint(0, 400), rng.randint(0, 300), 80, 60) for _ in range(3)]
        spam = [box("car", rng.randint(0, 400), rng.randint(0, 300), 80, 60)]
        items.append([("a", boxes(*truth)), ("b", boxes(*truth[:2])), ("spam", boxes(*spam))])
    reliability = estimate_reliability(items)
    assert reliability["spam"] < 0.5 < 0.8 < min(reliability["a"], reliability["b"])


def test_box_f1():
    assert box_f1([CAR, BIKE], [CAR]) == pytest.approx(2 / 3)
    assert box_f1([], []) == 1.0
    assert box_f1([{**CAR, "label": "truck"}], [CAR]) == 0.0
