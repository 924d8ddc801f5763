"""A2I's built-in task types on a flow: the request source (``HumanLoopRequestSource``) and
the human loop activation conditions (``HumanLoopActivationConditions``, a JSON string), as
CreateFlowDefinition takes them; their validation, and their evaluation against a built-in
endpoint's inference, as the AWS service evaluates them (docs/aws.md).

The condition language: ``{"Conditions": [node, ...]}``, each node independent (a loop
starts when any is true). A node is ``{"And": [node, ...]}``, ``{"Or": [node, ...]}`` or a
simple condition ``{"ConditionType": ..., "ConditionParameters": {...}}``:

- Textract (``AWS/Textract/AnalyzeDocument/Forms/V1``): ``ImportantFormKeyConfidenceCheck``
  (``ImportantFormKey``, ``"*"`` for any key; ``ImportantFormKeyAliases``; bounds
  ``KeyValueBlockConfidence<Op>`` and ``WordBlockConfidence<Op>``), ``MissingImportantFormKey``
  (``ImportantFormKey``, ``ImportantFormKeyAliases``) and ``Sampling``;
- Rekognition (``AWS/Rekognition/DetectModerationLabels/Image/V3`` or ``V4``):
  ``ModerationLabelConfidenceCheck`` (``ModerationLabelName``, ``"*"`` for any label; bounds
  ``Confidence<Op>``) and ``Sampling``;

where ``<Op>`` is ``Equals``, ``LessThan``, ``LessThanEquals``, ``GreaterThan`` or
``GreaterThanEquals`` (confidences 0-100) and ``Sampling`` has ``RandomSamplingPercentage``.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopin.errors import ValidationError

TEXTRACT_SOURCE = "AWS/Textract/AnalyzeDocument/Forms/V1"
REKOGNITION_V3 = "AWS/Rekognition/DetectModerationLabels/Image/V3"
REKOGNITION_V4 = "AWS/Rekognition/DetectModerationLabels/Image/V4"
REQUEST_SOURCES = (TEXTRACT_SOURCE, REKOGNITION_V3, REKOGNITION_V4)
SOURCE_TITLES = {
    TEXTRACT_SOURCE: "Amazon Textract AnalyzeDocument Forms V1",
    REKOGNITION_V3: "Amazon Rekognition DetectModerationLabels V3",
    REKOGNITION_V4: "Amazon Rekognition DetectModerationLabels V4",
}
MAX_CONDITIONS_CHARS = 10_240  # A2I's limit on the JSON string
MAX_DEPTH = 10  # And/Or nesting

SOURCE_FIELD = "HumanLoopRequestSource.AwsManagedHumanLoopRequestSource"
CONDITIONS_FIELD = "HumanLoopActivationConfig.HumanLoopActivationConditionsConfig.HumanLoopActivationConditions"

_OPS: dict[str, Callable[[float, float], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}
_NAME = {"ImportantFormKeyConfidenceCheck": "ImportantFormKey", "MissingImportantFormKey": "ImportantFormKey"}
_NAME["ModerationLabelConfidenceCheck"] = "ModerationLabelName"
# The bound prefixes each confidence check takes.
_BOUND_PREFIXES = {
    "ImportantFormKeyConfidenceCheck": ("KeyValueBlockConfidence", "WordBlockConfidence"),
    "ModerationLabelConfidenceCheck": ("Confidence",),
}
_TYPES = {
    TEXTRACT_SOURCE: ("ImportantFormKeyConfidenceCheck", "MissingImportantFormKey", "Sampling"),
    REKOGNITION_V3: ("ModerationLabelConfidenceCheck", "Sampling"),
    REKOGNITION_V4: ("ModerationLabelConfidenceCheck", "Sampling"),
}


def is_rekognition(source: str | None) -> bool:
    return source in (REKOGNITION_V3, REKOGNITION_V4)


def check_source(source: Any) -> str:
    if source not in REQUEST_SOURCES:
        raise ValidationError(f"{SOURCE_FIELD} must be one of {', '.join(REQUEST_SOURCES)}.")
    return str(source)


def check_conditions(text: Any, source: str | None) -> dict[str, Any]:
    """The parsed conditions, or a ValidationError naming the field and what is wrong."""
    if source is None:
        raise ValidationError(
            f"{CONDITIONS_FIELD} needs {SOURCE_FIELD}: activation conditions belong to A2I's built-in "
            "task types (with a custom task type every StartHumanLoop creates a review)."
        )
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_CONDITIONS_CHARS:
        raise ValidationError(f"{CONDITIONS_FIELD} must be a JSON string of 1 to {MAX_CONDITIONS_CHARS:,} characters.")
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"{CONDITIONS_FIELD} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict) or set(parsed) != {"Conditions"}:
        raise ValidationError(f'{CONDITIONS_FIELD} must be an object with one member, "Conditions".')
    _check_nodes(parsed["Conditions"], "Conditions", _TYPES[check_source(source)], 0)
    checked: dict[str, Any] = parsed
    return checked


def _fail(where: str, problem: str) -> ValidationError:
    return ValidationError(f"{CONDITIONS_FIELD}: {where} {problem}")


def _check_nodes(nodes: Any, where: str, types: tuple[str, ...], depth: int) -> None:
    if not isinstance(nodes, list) or not nodes:
        raise _fail(where, "must be a non-empty list of conditions.")
    if depth > MAX_DEPTH:
        raise _fail(where, f"nests And/Or more than {MAX_DEPTH} deep.")
    for n, node in enumerate(nodes):
        at = f"{where}[{n}]"
        if not isinstance(node, dict):
            raise _fail(at, "must be an object.")
        if set(node) in ({"And"}, {"Or"}):
            (key,) = node
            _check_nodes(node[key], f"{at}.{key}", types, depth + 1)
        elif set(node) == {"ConditionType", "ConditionParameters"}:
            _check_simple(node["ConditionType"], node["ConditionParameters"], at, types)
        else:
            raise _fail(at, 'must be {"And": [...]}, {"Or": [...]} or {"ConditionType", "ConditionParameters"}.')


def _check_simple(kind: Any, params: Any, at: str, types: tuple[str, ...]) -> None:
    if kind not in types:
        raise _fail(f"{at}.ConditionType", f"must be one of {', '.join(types)} for this request source.")
    if not isinstance(params, dict):
        raise _fail(f"{at}.ConditionParameters", "must be an object.")
    bounds = {f"{prefix}{op}" for prefix in _BOUND_PREFIXES.get(kind, ()) for op in _OPS}
    if kind == "Sampling":
        allowed = {"RandomSamplingPercentage"}
    else:
        allowed = {_NAME[kind], *bounds} | ({"ImportantFormKeyAliases"} if _NAME[kind] == "ImportantFormKey" else set())
    if unknown := sorted(set(params) - allowed):
        raise _fail(f"{at}.ConditionParameters", f"has unknown member(s) {', '.join(unknown)} for {kind}.")
    if kind == "Sampling":
        share: Any = params.get("RandomSamplingPercentage")
        if not _is_number(share) or not 0 <= share <= 100:
            raise _fail(f"{at}.ConditionParameters.RandomSamplingPercentage", "must be a number from 0 to 100.")
        return
    name_key = _NAME[kind]
    if not isinstance(params.get(name_key), str) or not params[name_key].strip():
        raise _fail(f"{at}.ConditionParameters.{name_key}", "must be a non-empty string.")
    aliases = params.get("ImportantFormKeyAliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise _fail(f"{at}.ConditionParameters.ImportantFormKeyAliases", "must be a list of strings.")
    for bound in sorted(bounds & set(params)):
        if not _is_number(params[bound]) or not 0 <= params[bound] <= 100:
            raise _fail(f"{at}.ConditionParameters.{bound}", "must be a number from 0 to 100.")
    if bounds and not bounds & set(params):
        raise _fail(f"{at}.ConditionParameters", f"needs a confidence bound ({', '.join(sorted(bounds))}).")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class Pair:
    """A key-value pair as the Textract conditions see it: confidences 0-100."""

    key: str
    confidence: float
    word_confidences: tuple[float, ...]


@dataclass
class Evaluation:
    """Whether a loop starts, the conditions echoed with their ``EvaluationResult`` (A2I's
    ``humanTaskActivationConditionResults``), and the inferences (label or pair indexes)
    that made a confidence check true: they are what the reviewer is shown."""

    fired: bool
    results: dict[str, Any]
    selected: list[int] = field(default_factory=list)


def _bounds_hold(params: dict[str, Any], prefix: str, confidence: float) -> bool:
    """Every ``<prefix><Op>`` bound given holds for the confidence (None if none is given)."""
    return all(_OPS[op](confidence, params[prefix + op]) for op in _OPS if prefix + op in params)


def _has_bounds(params: dict[str, Any], prefix: str) -> bool:
    return any(prefix + op in params for op in _OPS)


def _sampled(params: dict[str, Any], seed: str, at: str) -> bool:
    # Seeded by the input's hash and the condition's place: the same request decides the
    # same way, as A2I promises for Sampling.
    draw = int(hashlib.sha256(f"{seed}\n{at}".encode()).hexdigest()[:8], 16) % 10_000
    return draw < float(params["RandomSamplingPercentage"]) * 100


def _key_matches(params: dict[str, Any], key: str) -> bool:
    wanted = params["ImportantFormKey"]
    if wanted == "*":
        return True
    names = [wanted, *params.get("ImportantFormKeyAliases", [])]
    return _norm(key) in {_norm(n) for n in names}


def _norm(key: str) -> str:
    return " ".join(key.strip().rstrip(":").split()).casefold()


class _Evaluator:
    def __init__(self, seed: str, labels: Sequence[tuple[str, float]] = (), pairs: Sequence[Pair] = ()) -> None:
        self.seed = seed
        self.labels = labels
        self.pairs = pairs
        self.selected: set[int] = set()

    def nodes(
        self, nodes: list[dict[str, Any]], at: str, combine: Callable[[list[bool]], bool]
    ) -> tuple[bool, list[dict[str, Any]]]:
        out = [self.node(node, f"{at}[{n}]") for n, node in enumerate(nodes)]
        return combine([result["EvaluationResult"] for result in out]), out

    def node(self, node: dict[str, Any], at: str) -> dict[str, Any]:
        for key, combine in (("And", all), ("Or", any)):
            if key in node:
                value, children = self.nodes(node[key], f"{at}.{key}", combine)
                return {key: children, "EvaluationResult": value}
        return node | {"EvaluationResult": self.simple(node["ConditionType"], node["ConditionParameters"], at)}

    def simple(self, kind: str, params: dict[str, Any], at: str) -> bool:
        if kind == "Sampling":
            return _sampled(params, self.seed, at)
        if kind == "ModerationLabelConfidenceCheck":
            wanted = params["ModerationLabelName"]
            hits = [
                n
                for n, (name, confidence) in enumerate(self.labels)
                if wanted in ("*", name) and _bounds_hold(params, "Confidence", confidence)
            ]
        elif kind == "MissingImportantFormKey":
            return not any(_key_matches(params, pair.key) for pair in self.pairs)
        else:  # ImportantFormKeyConfidenceCheck
            hits = [
                n
                for n, pair in enumerate(self.pairs)
                if _key_matches(params, pair.key)
                and _bounds_hold(params, "KeyValueBlockConfidence", pair.confidence)
                and (
                    not _has_bounds(params, "WordBlockConfidence")
                    or any(_bounds_hold(params, "WordBlockConfidence", c) for c in pair.word_confidences)
                )
            ]
        self.selected.update(hits)
        return bool(hits)


def evaluate(
    conditions: dict[str, Any],
    *,
    seed: str,
    labels: Sequence[tuple[str, float]] = (),
    pairs: Sequence[Pair] = (),
) -> Evaluation:
    """Evaluate checked conditions against moderation ``labels`` ((name, confidence 0-100))
    or a document's ``pairs``; ``seed`` (the input's hash) seeds ``Sampling``."""
    evaluator = _Evaluator(seed, labels, pairs)
    fired, results = evaluator.nodes(conditions["Conditions"], "Conditions", any)
    return Evaluation(fired, {"Conditions": results}, sorted(evaluator.selected))


def important_form_keys(conditions: dict[str, Any]) -> list[dict[str, Any]]:
    """The keys the Textract conditions name (not ``"*"``), as the element's ``keys``:
    ``[{importantFormKey, importantFormKeyAliases}]`` (A2I's ``humanLoopContext``)."""
    found: dict[str, list[str]] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            for key in ("And", "Or"):
                if key in node:
                    walk(node[key])
            params = node.get("ConditionParameters", {})
            name = params.get("ImportantFormKey")
            if name and name != "*":
                found.setdefault(name, [])
                found[name] += [a for a in params.get("ImportantFormKeyAliases", []) if a not in found[name]]

    walk(conditions["Conditions"])
    return [{"importantFormKey": k, "importantFormKeyAliases": v} for k, v in found.items()]
