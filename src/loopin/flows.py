"""Flow definitions: which team answers which template, how many times, how fast, and
where the output goes.

A flow is created whole. Afterwards ``update_flow`` may change what does not alter a loop
already running: the task's title, description and keywords (shown to workers from the
flow as it is now), the task count and availability lifetime (read when a loop starts),
the time limit (read when a worker takes a task; a task held now keeps its deadline) and
the consolidation settings (read when a loop's output is written), the adaptive
reviewers settings (read when a loop starts) and the frame origins (the
extra https origins its task frames may load scripts, styles, images, media and frames from,
on top of the global ``task_frame_origins``; read each time a task is shown). The team, the
template and the output path stay as created: changing them would hand waiting tasks to other
people, change what in-flight loops render and the answer's shape, or write their output
where the client does not look for it. Create a new flow for those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopin import activation
from loopin.consolidation import default_quorum
from loopin.errors import LoopinError, NotFoundError, ResourceInUseError, ValidationError
from loopin.models import FlowDefinition, HumanLoop, TaskSlot, Workteam
from loopin.store import normalize_output_location
from loopin.task_templates import get_task_ui
from loopin.validation import check_name, check_origins, check_text
from loopin.workforce import get_team

KEYWORD = re.compile(r"^[A-Za-z0-9]+( [A-Za-z0-9]+)*$")
ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
DEFAULT_AVAILABILITY_S = 864_000  # 10 days
MAX_AVAILABILITY_S = 864_000
DEFAULT_TIME_LIMIT_S = 3_600
MIN_TIME_LIMIT_S = 30
MAX_TIME_LIMIT_S = 28_800  # Ground Truth's limit for custom tasks: 8 hours
MAX_TASK_COUNT = 3
MIN_PRIORITY, MAX_PRIORITY, DEFAULT_PRIORITY = 0, 100, 50  # a loop's priority: 0 least urgent
FALLBACKS = ("model", "fail")  # what answers a loop when its deadline passes or all declined


def create_flow(
    session: Session,
    *,
    name: str,
    team: str,
    task_ui: str,
    title: str,
    description: str,
    output_path: str,
    task_count: int = 1,
    keywords: Sequence[str] = (),
    availability_lifetime_s: int = DEFAULT_AVAILABILITY_S,
    time_limit_s: int = DEFAULT_TIME_LIMIT_S,
    role_arn: str | None = None,
    consolidation: bool | None = None,
    consolidation_quorum: int | None = None,
    input_locations: Sequence[str] | None = None,
    frame_origins: Sequence[str] = (),
    default_priority: int = DEFAULT_PRIORITY,
    deadline_s: int | None = None,
    fallback: str = "fail",
    escalation_team: str | None = None,
    escalation_s: int | None = None,
    request_source: str | None = None,
    activation_conditions: str | None = None,
    adaptive: bool = False,
    adaptive_model_agreement: float | None = None,
    adaptive_worker_agreement: float | None = None,
    now_ms: int,
) -> FlowDefinition:
    """A new flow definition. A ValidationError names the first bad field in its message
    and every bad field in ``details["fields"]``.

    ``consolidation`` None: on when the task count is above 1; ``consolidation_quorum``
    None: a majority of the task count (see ``consolidation_settings``). ``deadline_s``
    None or 0: no deadline. ``escalation_team`` None or "": no escalation. ``request_source``
    and ``activation_conditions`` (a JSON string, kept as given): A2I's built-in task types
    (see ``loopin.activation``); None: a custom task type. ``adaptive``: one worker first,
    more up to the task count while answers disagree beyond the limits (None: the defaults;
    see ``loopin.adaptive``)."""
    if request_source is not None:
        activation.check_source(request_source)
    if activation_conditions is not None:
        activation.check_conditions(activation_conditions, request_source)
    problems = _settings_problems(
        name=name,
        title=title,
        description=description,
        task_count=task_count,
        availability_lifetime_s=availability_lifetime_s,
        time_limit_s=time_limit_s,
        keywords=keywords,
        consolidation=consolidation,
        consolidation_quorum=consolidation_quorum,
        default_priority=default_priority,
        deadline_s=deadline_s,
        fallback=fallback,
        adaptive=adaptive,
        adaptive_model_agreement=adaptive_model_agreement,
        adaptive_worker_agreement=adaptive_worker_agreement,
    )
    if role_arn is not None and (len(role_arn) > 2048 or not ROLE_ARN.fullmatch(role_arn)):
        problems["role_arn"] = f"'{role_arn}' is not an IAM role ARN."
    output = ""
    try:
        output = normalize_output_location(output_path)
    except ValidationError as exc:
        problems["output_path"] = exc.message
    locations: list[str] | None = None
    if input_locations is not None:
        try:
            locations = _input_locations(input_locations)
        except ValidationError as exc:
            problems["input_locations"] = exc.message
    origins = _origins(frame_origins, problems)
    own_team = session.scalar(select(Workteam.id).where(Workteam.name == team))
    escalation_team_id = _escalation_problems(
        session,
        problems,
        own_team_id=own_team,
        escalation_team=escalation_team,
        escalation_s=escalation_s,
        deadline_s=deadline_s,
        availability_lifetime_s=availability_lifetime_s,
        time_limit_s=time_limit_s,
    )
    _raise_problems(problems)
    if session.scalar(select(FlowDefinition.id).where(FlowDefinition.name == name)) is not None:
        raise ResourceInUseError(f"A flow definition named '{name}' exists already.")
    flow = FlowDefinition(
        name=name,
        team_id=get_team(session, team).id,
        task_ui_id=get_task_ui(session, task_ui).id,
        title=title,
        description=description,
        keywords=json.dumps(list(keywords)),
        task_count=task_count,
        availability_lifetime_s=availability_lifetime_s,
        time_limit_s=time_limit_s,
        output_path=output,
        role_arn=role_arn,
        consolidation=consolidation,
        consolidation_quorum=consolidation_quorum,
        frame_origins=json.dumps(origins),
        created_at=now_ms,
        input_locations=json.dumps(locations) if locations is not None else None,
        request_source=request_source,
        activation_conditions=activation_conditions,
        default_priority=default_priority,
        deadline_s=deadline_s or None,
        fallback=fallback,
        escalation_team_id=escalation_team_id,
        escalation_s=escalation_s if escalation_team_id is not None else None,
        adaptive=adaptive,
        adaptive_model_agreement=adaptive_model_agreement,
        adaptive_worker_agreement=adaptive_worker_agreement,
    )
    session.add(flow)
    session.flush()
    return flow


def _input_locations(values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or len(values) > 100:
        raise ValidationError("input_locations is a list of at most 100 s3:// locations.")
    return [normalize_output_location(v) for v in values]


def input_locations(flow: FlowDefinition) -> list[str] | None:
    return None if flow.input_locations is None else list(json.loads(flow.input_locations))


def _under(uri: str, prefix: str) -> bool:
    return uri == prefix or uri.startswith(prefix.rstrip("/") + "/")


def may_grant(
    session: Session,
    flow: FlowDefinition,
    uri: str,
    *,
    default_locations: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
) -> bool:
    """Whether a task of ``flow`` may name ``uri`` and get read access to it: never inside
    any flow's output location (other teams' answers), and only inside the flow's input
    locations, else inside ``default_locations`` (the server's; see
    ``Services.default_input_locations``) or the flow's output bucket, else (None) anywhere
    else. ``outputs``: every flow's output location, when the caller has them already
    (``output_paths``)."""
    if not isinstance(uri, str) or not uri.startswith("s3://") or "/../" in uri + "/" or "/./" in uri + "/":
        return False
    if any(_under(uri, out) for out in (output_paths(session) if outputs is None else outputs)):
        return False
    allowed = input_locations(flow)
    if allowed is None and default_locations is not None:
        # The server's locations and, as A2I's role usually reaches it, the flow's own
        # output bucket (outside every output location, as checked above).
        own_bucket = "s3://" + flow.output_path.removeprefix("s3://").partition("/")[0]
        allowed = [normalize_output_location(location) for location in [*default_locations, own_bucket]]
    return allowed is None or any(_under(uri, prefix) for prefix in allowed)


def output_paths(session: Session) -> list[str]:
    """Every flow's output location (no task may name anything inside one)."""
    return list(session.scalars(select(FlowDefinition.output_path).distinct()))


def check_input_uris(
    session: Session,
    flow: FlowDefinition,
    value: object,
    *,
    default_locations: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
) -> None:
    """Every s3:// location in a loop's input must be one the flow may grant (``may_grant``)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith("s3://") and not may_grant(
                session, flow, item, default_locations=default_locations, outputs=outputs
            ):
                raise ValidationError(
                    f"The input names {item}, which flow definition '{flow.name}' may not grant access to: "
                    "it is inside an output location, or outside the flow's input locations (the flow's "
                    "input_locations, else the server's LOOPIN_INPUT_LOCATIONS)."
                )
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def update_flow(
    session: Session,
    name: str,
    *,
    title: str,
    description: str,
    keywords: Sequence[str],
    task_count: int,
    availability_lifetime_s: int,
    time_limit_s: int,
    consolidation: bool | None | EllipsisType = ...,
    consolidation_quorum: int | None | EllipsisType = ...,
    frame_origins: Sequence[str] | None = None,
    default_priority: int | None = None,
    deadline_s: int | None = None,
    fallback: str | None = None,
    escalation_team: str | None = None,
    escalation_s: int | None = None,
    adaptive: bool | None = None,
    adaptive_model_agreement: float | None | EllipsisType = ...,
    adaptive_worker_agreement: float | None | EllipsisType = ...,
) -> FlowDefinition:
    """Change the fields that leave running loops as they are (see the module's notes);
    errors as in ``create_flow``. The consolidation settings left at ``...`` stay; None
    goes back to the default. ``frame_origins`` None keeps them. Priority, deadline and
    fallback: None keeps the current value; ``deadline_s=0`` removes the deadline. A new
    default priority or deadline applies to loops started afterwards; a new fallback to
    every loop not yet finished. ``escalation_team`` None keeps the escalation, "" removes
    it (and its time); a new escalation applies to loops that have not escalated yet.
    ``adaptive`` None keeps it; the limits left at ``...`` stay (cleared when adaptive
    goes off), None goes back to the default; they apply to loops started afterwards."""
    flow = get_flow(session, name)
    adaptive = flow.adaptive if adaptive is None else adaptive
    if isinstance(adaptive_model_agreement, EllipsisType):
        adaptive_model_agreement = flow.adaptive_model_agreement if adaptive is True else None
    if isinstance(adaptive_worker_agreement, EllipsisType):
        adaptive_worker_agreement = flow.adaptive_worker_agreement if adaptive is True else None
    if isinstance(consolidation, EllipsisType):
        consolidation = flow.consolidation
    if isinstance(consolidation_quorum, EllipsisType):
        consolidation_quorum = flow.consolidation_quorum
    default_priority = flow.default_priority if default_priority is None else default_priority
    deadline_s = flow.deadline_s if deadline_s is None else deadline_s
    fallback = flow.fallback if fallback is None else fallback
    if escalation_team is None:
        escalation_team = escalation_team_name(session, flow)
    if escalation_team and escalation_s is None:
        escalation_s = flow.escalation_s
    problems = _settings_problems(
        name=None,
        title=title,
        description=description,
        task_count=task_count,
        availability_lifetime_s=availability_lifetime_s,
        time_limit_s=time_limit_s,
        keywords=keywords,
        consolidation=consolidation,
        consolidation_quorum=consolidation_quorum,
        default_priority=default_priority,
        deadline_s=deadline_s,
        fallback=fallback,
        adaptive=adaptive,
        adaptive_model_agreement=adaptive_model_agreement,
        adaptive_worker_agreement=adaptive_worker_agreement,
    )
    origins = _origins(frame_origins, problems) if frame_origins is not None else None
    escalation_team_id = _escalation_problems(
        session,
        problems,
        own_team_id=flow.team_id,
        escalation_team=escalation_team,
        escalation_s=escalation_s,
        deadline_s=deadline_s,
        availability_lifetime_s=availability_lifetime_s,
        time_limit_s=time_limit_s,
    )
    _raise_problems(problems)
    if origins is not None:
        flow.frame_origins = json.dumps(origins)
    flow.title = title
    flow.description = description
    flow.keywords = json.dumps(list(keywords))
    flow.task_count = task_count
    flow.availability_lifetime_s = availability_lifetime_s
    flow.time_limit_s = time_limit_s
    flow.consolidation = consolidation
    flow.consolidation_quorum = consolidation_quorum
    flow.default_priority = default_priority
    flow.deadline_s = deadline_s or None
    flow.fallback = fallback
    flow.escalation_team_id = escalation_team_id
    flow.escalation_s = escalation_s if escalation_team_id is not None else None
    flow.adaptive = adaptive
    flow.adaptive_model_agreement = adaptive_model_agreement
    flow.adaptive_worker_agreement = adaptive_worker_agreement
    session.flush()
    return flow


def escalation_team_name(session: Session, flow: FlowDefinition) -> str | None:
    """The name of the flow's escalation team; None: the flow does not escalate."""
    if flow.escalation_team_id is None:
        return None
    return session.get_one(Workteam, flow.escalation_team_id).name


def consolidation_settings(flow: FlowDefinition, *, answers: int | None = None) -> tuple[bool, int]:
    """(consolidate?, quorum) as they apply: by default consolidation is on when the task
    count (or ``answers``, a loop's own count) is above 1, and the quorum is a majority of
    the task count."""
    count = flow.task_count if answers is None else answers
    enabled = flow.consolidation if flow.consolidation is not None else count > 1
    quorum = flow.consolidation_quorum if flow.consolidation_quorum is not None else default_quorum(count)
    return enabled, quorum


def frame_origins(flow: FlowDefinition) -> list[str]:
    """The extra origins the flow's task frames may load from."""
    origins: list[str] = json.loads(flow.frame_origins or "[]")
    return origins


def _origins(values: Sequence[str], problems: dict[str, str]) -> list[str]:
    try:
        return check_origins(list(values) if not isinstance(values, str) else values)
    except ValidationError as exc:
        problems["frame_origins"] = exc.message
        return []


def check_priority(priority: object, *, field: str = "priority") -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        message = f"{field} must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}."
        raise ValidationError(message, details={"fields": {field: message}})
    return priority


def get_flow(session: Session, name: str) -> FlowDefinition:
    flow = session.scalar(select(FlowDefinition).where(FlowDefinition.name == name))
    if flow is None:
        raise NotFoundError(f"No flow definition named '{name}'.")
    return flow


def activation_conditions(session: Session, name: str) -> tuple[str, dict[str, Any]] | None:
    """A flow's request source and parsed activation conditions; None when it has none (or
    there is no such flow: starting the loop will say so)."""
    row = session.execute(
        select(FlowDefinition.request_source, FlowDefinition.activation_conditions).where(FlowDefinition.name == name)
    ).first()
    if row is None or row.request_source is None or row.activation_conditions is None:
        return None
    return row.request_source, json.loads(row.activation_conditions)


def list_flows(session: Session) -> list[FlowDefinition]:
    return list(session.scalars(select(FlowDefinition).order_by(FlowDefinition.name)))


def tasks_waiting(session: Session) -> dict[int, int]:
    """Task slots waiting for a worker, by flow id (read from the partial index of
    available slots: the cost follows the queue, not the history)."""
    rows = session.execute(
        select(TaskSlot.flow_id, func.count()).where(TaskSlot.status == "available").group_by(TaskSlot.flow_id)
    )
    return {flow_id: count for flow_id, count in rows.all()}


def delete_flow(session: Session, name: str) -> None:
    flow = get_flow(session, name)
    active = session.scalar(
        select(HumanLoop.name)
        .where(HumanLoop.flow_id == flow.id, HumanLoop.status.in_(("InProgress", "Stopping")))
        .limit(1)
    )
    if active is not None:
        raise ResourceInUseError(
            f"Flow definition '{name}' still has active human loops (for example '{active}'); stop them first."
        )
    if session.scalar(select(HumanLoop.id).where(HumanLoop.flow_id == flow.id).limit(1)):
        raise ResourceInUseError(f"Flow definition '{name}' still has human loops; delete them first.")
    session.delete(flow)


def _problems(
    *,
    name: str | None,
    title: str,
    description: str,
    task_count: int,
    availability_lifetime_s: int,
    time_limit_s: int,
    keywords: Sequence[str],
    consolidation: bool | None = None,
    consolidation_quorum: int | None = None,
) -> dict[str, str]:
    """What is wrong with each field, by field name, in the order the fields are shown
    (``name`` None: not checked)."""
    checks: dict[str, Callable[[], object]] = {
        "name": lambda: name is None or check_name(name, what="Flow definition name"),
        "title": lambda: check_text(title, what="Task title", max_len=128),
        "description": lambda: check_text(description, what="Task description", max_len=255),
        "task_count": lambda: _check_int(task_count, what="TaskCount", low=1, high=MAX_TASK_COUNT),
        "availability_lifetime_s": lambda: _check_int(
            availability_lifetime_s, what="Task availability lifetime", low=1, high=MAX_AVAILABILITY_S
        ),
        "time_limit_s": lambda: _check_int(
            time_limit_s, what="Task time limit", low=MIN_TIME_LIMIT_S, high=MAX_TIME_LIMIT_S
        ),
        "keywords": lambda: _check_keywords(keywords),
        "consolidation": lambda: _check_consolidation(consolidation),
        "consolidation_quorum": lambda: _check_quorum(consolidation_quorum, task_count),
    }
    problems: dict[str, str] = {}
    for field, check in checks.items():
        try:
            check()
        except LoopinError as exc:
            problems[field] = exc.message
    return problems


def _deadline_problems(
    *,
    default_priority: int,
    deadline_s: int | None,
    fallback: str,
    availability_lifetime_s: int,
    time_limit_s: int,
) -> dict[str, str]:
    """The deadline must leave a worker a whole task time limit, and come before the
    availability lifetime ends (which fails the loop)."""
    problems: dict[str, str] = {}
    try:
        check_priority(default_priority, field="default_priority")
    except LoopinError as exc:
        problems["default_priority"] = exc.message
    if deadline_s:
        low = time_limit_s if isinstance(time_limit_s, int) else MIN_TIME_LIMIT_S
        high = availability_lifetime_s if isinstance(availability_lifetime_s, int) else MAX_AVAILABILITY_S
        try:
            _check_int(deadline_s, what="deadline_seconds", low=max(low, 1), high=max(high, 1))
        except LoopinError as exc:
            problems["deadline_s"] = (
                f"{exc.message} A deadline may not be shorter than the task time limit "
                f"({low} s) nor longer than the availability lifetime ({high} s)."
            )
    elif deadline_s is not None and (isinstance(deadline_s, bool) or deadline_s != 0):
        problems["deadline_s"] = "deadline_seconds must be a whole number of seconds (0: no deadline)."
    if fallback not in FALLBACKS:
        problems["fallback"] = f"fallback must be one of {', '.join(FALLBACKS)}."
    return problems


def _escalation_problems(
    session: Session,
    problems: dict[str, str],
    *,
    own_team_id: int | None,
    escalation_team: str | None,
    escalation_s: int | None,
    deadline_s: int | None,
    availability_lifetime_s: int,
    time_limit_s: int,
) -> int | None:
    """Check the escalation settings into ``problems``; the escalation team's id (None: no
    escalation). An escalation starts when the deadline passes (or all declined), must
    leave a worker a whole task time limit, and must end before the availability
    lifetime does (which fails the loop)."""
    if not escalation_team:
        if escalation_s is not None:
            problems["escalation_team"] = "An escalation time needs an escalation team."
        return None
    team_id = session.scalar(select(Workteam.id).where(Workteam.name == escalation_team))
    if team_id is None:
        problems["escalation_team"] = f"No team named '{escalation_team}' to escalate to."
    elif team_id == own_team_id:
        problems["escalation_team"] = "The escalation team must be another team than the flow's own."
    if not deadline_s and "deadline_s" not in problems:
        problems["deadline_s"] = "An escalation needs a deadline: the loop escalates when it passes."
    low = time_limit_s if isinstance(time_limit_s, int) and not isinstance(time_limit_s, bool) else MIN_TIME_LIMIT_S
    lifetime = availability_lifetime_s if isinstance(availability_lifetime_s, int) else MAX_AVAILABILITY_S
    deadline = deadline_s if isinstance(deadline_s, int) and not isinstance(deadline_s, bool) else 0
    high = lifetime - deadline
    if escalation_s is None:
        problems["escalation_s"] = "An escalation team needs an escalation time (seconds)."
    elif isinstance(escalation_s, bool) or not isinstance(escalation_s, int) or not low <= escalation_s <= high:
        problems["escalation_s"] = (
            f"escalation_seconds must be a whole number from the task time limit ({low} s) to the "
            f"availability lifetime minus the deadline ({high} s): a worker needs a whole time limit, and "
            "the escalation must end before the loop expires."
        )
    return team_id


def _settings_problems(
    *,
    name: str | None,
    title: str,
    description: str,
    task_count: int,
    availability_lifetime_s: int,
    time_limit_s: int,
    keywords: Sequence[str],
    consolidation: bool | None,
    consolidation_quorum: int | None,
    default_priority: int,
    deadline_s: int | None,
    fallback: str,
    adaptive: object,
    adaptive_model_agreement: object,
    adaptive_worker_agreement: object,
) -> dict[str, str]:
    """Every bad field among a flow's plain settings (create and update check the same)."""
    return (
        _problems(
            name=name,
            title=title,
            description=description,
            task_count=task_count,
            availability_lifetime_s=availability_lifetime_s,
            time_limit_s=time_limit_s,
            keywords=keywords,
            consolidation=consolidation,
            consolidation_quorum=consolidation_quorum,
        )
        | _deadline_problems(
            default_priority=default_priority,
            deadline_s=deadline_s,
            fallback=fallback,
            availability_lifetime_s=availability_lifetime_s,
            time_limit_s=time_limit_s,
        )
        | _adaptive_problems(adaptive, task_count, adaptive_model_agreement, adaptive_worker_agreement)
    )


def _adaptive_problems(
    adaptive: object, task_count: object, model_limit: object, worker_limit: object
) -> dict[str, str]:
    """Adaptive reviewers need room for a second worker, and limits that are fractions."""
    problems: dict[str, str] = {}
    if not isinstance(adaptive, bool):
        problems["adaptive"] = "adaptive must be true or false."
    elif adaptive and isinstance(task_count, int) and not isinstance(task_count, bool) and task_count < 2:
        problems["adaptive"] = (
            f"Adaptive reviewers need a task count of 2 to {MAX_TASK_COUNT}: a loop asks one worker first and "
            "more, up to the task count, only when the answers disagree. Raise the task count or turn adaptive off."
        )
    for field, value in (("adaptive_model_agreement", model_limit), ("adaptive_worker_agreement", worker_limit)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            problems[field] = f"{field} must be a number from 0 to 1 (an agreement below it asks one more worker)."
        elif adaptive is not True:
            problems[field] = f"{field} applies only to adaptive reviewers: set adaptive to true, or leave it out."
    return problems


def _raise_problems(problems: dict[str, str]) -> None:
    if problems:
        raise ValidationError(next(iter(problems.values())), details={"fields": problems})


def _check_keywords(keywords: Sequence[str]) -> None:
    if len(keywords) > 5 or any(
        not isinstance(k, str) or not 1 <= len(k) <= 30 or not KEYWORD.fullmatch(k) for k in keywords
    ):
        raise ValidationError("Task keywords: at most 5, each 1 to 30 letters or digits (single spaces between words).")


def _check_int(value: int, *, what: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{what} must be a whole number from {low} to {high}.")


def _check_consolidation(value: bool | None) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError("Consolidation must be true or false.")


def _check_quorum(quorum: int | None, task_count: int) -> None:
    if quorum is None:
        return
    high = task_count if isinstance(task_count, int) and 1 <= task_count <= MAX_TASK_COUNT else MAX_TASK_COUNT
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= high:
        raise ValidationError(
            f"Consolidation quorum must be a whole number from 1 to the task count ({high}): "
            "how many of the workers must agree on a box or a label for it to be kept."
        )
