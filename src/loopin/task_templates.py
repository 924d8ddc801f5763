"""Human task UIs: named Liquid templates, checked for syntax when created.

Rendering them for workers (with A2I's variables and filters) belongs to the worker
console; here a template only has to parse. ``template_warnings`` names what would go
wrong later: ``crowd-*`` elements loopin's element library does not define (their answers
would be lost, so the worker console refuses to submit such a task).
"""

from __future__ import annotations

import hashlib
import re

from liquid import Environment
from liquid.exceptions import LiquidError
from sqlalchemy import select
from sqlalchemy.orm import Session

from loopin.errors import NotFoundError, ResourceInUseError, ValidationError
from loopin.models import FlowDefinition, TaskUi
from loopin.validation import check_name

MAX_TEMPLATE_CHARS = 128_000
_parser = Environment()

# The crowd-* elements loopin's library (ui/static/crowd/*.js) defines; a browser test
# checks this set against customElements in the task frame, both ways.
KNOWN_ELEMENTS = frozenset(
    {
        "crowd-alert",
        "crowd-badge",
        "crowd-bounding-box",
        "crowd-button",
        "crowd-card",
        "crowd-checkbox",
        "crowd-classifier",
        "crowd-classifier-multi-select",
        "crowd-entity-annotation",
        "crowd-fab",
        "crowd-form",
        "crowd-full-instructions",
        "crowd-icon-button",
        "crowd-image-classifier",
        "crowd-image-classifier-multi-select",
        "crowd-input",
        "crowd-instance-segmentation",
        "crowd-instructions",
        "crowd-keypoint",
        "crowd-line",
        "crowd-modal",
        "crowd-polygon",
        "crowd-polyline",
        "crowd-question-answer-generation",
        "crowd-radio-button",
        "crowd-radio-group",
        "crowd-rekognition-detect-moderation-labels",
        "crowd-semantic-segmentation",
        "crowd-short-instructions",
        "crowd-slider",
        "crowd-tab",
        "crowd-tabs",
        "crowd-text-area",
        "crowd-text-ranking",
        "crowd-textract-analyze-document",
        "crowd-toast",
        "crowd-toggle-button",
    }
)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CROWD_TAG = re.compile(r"<\s*(crowd-[A-Za-z0-9-]*[A-Za-z0-9])")


def template_warnings(content: str) -> list[str]:
    """What the template uses that loopin cannot serve: one sentence per ``crowd-*``
    element it does not define (HTML comments are left out). Empty when all is well."""
    used = {m.group(1).lower() for m in _CROWD_TAG.finditer(_COMMENT.sub("", content))}
    return [
        f"<{name}> is not an element loopin knows: workers would see nothing there, and the worker "
        "console refuses to submit a task whose named element it cannot read."
        for name in sorted(used - KNOWN_ELEMENTS)
    ]


def check_template(content: str) -> None:
    """Raise ValidationError naming the line of the first Liquid syntax error."""
    if not isinstance(content, str) or not 1 <= len(content) <= MAX_TEMPLATE_CHARS:
        raise ValidationError(f"The template must be 1 to {MAX_TEMPLATE_CHARS:,} characters long.")
    try:
        _parser.from_string(content)
    except LiquidError as exc:
        token = getattr(exc, "token", None)
        index = getattr(token, "start_index", -1)
        line = content.count("\n", 0, index) + 1 if index >= 0 else content.count("\n") + 1
        message = getattr(exc, "message", str(exc))
        raise ValidationError(
            f"Template syntax error on line {line}: {message}",
            details={"line": line, "error": message},
        ) from exc


def create_task_ui(session: Session, *, name: str, content: str, now_ms: int) -> TaskUi:
    check_name(name, what="Task UI name")
    check_template(content)
    if session.scalar(select(TaskUi.id).where(TaskUi.name == name)) is not None:
        raise ResourceInUseError(f"A task UI named '{name}' exists already.")
    ui = TaskUi(
        name=name,
        content=content,
        content_sha256=hashlib.sha256(content.encode()).hexdigest(),
        created_at=now_ms,
    )
    session.add(ui)
    session.flush()
    return ui


def get_task_ui(session: Session, name: str) -> TaskUi:
    ui = session.scalar(select(TaskUi).where(TaskUi.name == name))
    if ui is None:
        raise NotFoundError(f"No task UI named '{name}'.")
    return ui


def list_task_uis(session: Session) -> list[TaskUi]:
    return list(session.scalars(select(TaskUi).order_by(TaskUi.name)))


def delete_task_ui(session: Session, name: str) -> None:
    ui = get_task_ui(session, name)
    used_by = session.scalars(select(FlowDefinition.name).where(FlowDefinition.task_ui_id == ui.id).limit(3)).all()
    if used_by:
        raise ResourceInUseError(
            f"Task UI '{name}' is used by flow definition(s) {', '.join(used_by)}; delete those first."
        )
    session.delete(ui)


def flows_using(session: Session) -> dict[int, list[str]]:
    """The names of the flow definitions that use each task UI, by task UI id."""
    using: dict[int, list[str]] = {}
    for task_ui_id, flow in session.execute(
        select(FlowDefinition.task_ui_id, FlowDefinition.name).order_by(FlowDefinition.name)
    ).all():
        using.setdefault(task_ui_id, []).append(flow)
    return using
