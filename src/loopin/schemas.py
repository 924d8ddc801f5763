"""Wire models of the native API (``/api/v1``), shared by the server and the SDK.

Requests forbid unknown fields, so a typo is an error rather than a silently ignored
setting. Timestamps are ISO-8601 strings in UTC with milliseconds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ErrorBody(Response):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(Response):
    error: ErrorBody


# -- teams and workers ---------------------------------------------------------------


class TeamCreate(Request):
    name: str
    description: str


class TeamUpdate(Request):
    description: str


class Team(Response):
    name: str
    arn: str
    description: str
    members: list[str]
    worker_console_url: str
    created_at: str
    updated_at: str


class WorkerCreate(Request):
    email: str
    name: str = ""
    teams: list[str] = []
    password: str | None = Field(default=None, description="Set a password now instead of sending an invitation.")


class WorkerUpdate(Request):
    status: Literal["active", "disabled"]


class Worker(Response):
    worker_id: str
    email: str
    name: str
    status: str
    teams: list[str]
    created_at: str
    last_seen_at: str | None = None


class Invitation(Response):
    worker: Worker
    invitation_token: str | None = None
    invitation_url: str | None = None


class MemberChange(Request):
    email: str


# -- templates and flows -------------------------------------------------------------


class TaskUiCreate(Request):
    name: str
    template: str


class TaskUi(Response):
    name: str
    arn: str
    template: str
    content_sha256: str
    created_at: str
    warnings: list[str] = Field(
        default=[], description="What would go wrong with this template, e.g. crowd-* elements loopin does not know."
    )


class FlowCreate(Request):
    name: str
    team: str
    task_ui: str
    title: str
    description: str
    output_path: str
    task_count: int = 1
    keywords: list[str] = []
    availability_lifetime_seconds: int = 864_000
    time_limit_seconds: int = 3_600
    role_arn: str | None = None
    consolidation: bool | None = Field(
        default=None, description="Consolidate the answers into consolidatedAnswer; None: on when task_count > 1."
    )
    consolidation_quorum: int | None = Field(
        default=None, description="Workers who must agree for a box or label to be kept; None: a majority."
    )
    input_locations: list[str] | None = Field(
        default=None,
        description="s3:// locations loop inputs may name (tasks get read access only there). "
        "Default: anywhere but the output locations of flows.",
    )
    frame_origins: list[str] = Field(
        default=[],
        description="Extra https://host[:port] origins this flow's task frames may load scripts, styles, "
        "images, media and frames from (on top of the server's task_frame_origins).",
    )
    default_priority: int = Field(default=50, description="Priority (0-100) of loops started without one.")
    deadline_seconds: int | None = Field(
        default=None,
        description="Time a loop has to be answered in (from the task time limit to the availability "
        "lifetime); then its fallback answers it. None or 0: no deadline.",
    )
    fallback: Literal["model", "fail"] = Field(
        default="fail",
        description="What answers a loop nobody answered in time (or all declined) when no answer is in: "
        "the model's own prediction, or nothing (the loop fails). Answers already in always win.",
    )
    escalation_team: str | None = Field(
        default=None,
        description="A second team that may answer a loop too once its deadline passed (or all declined), "
        "for escalation_seconds, before the fallback. Needs a deadline.",
    )
    escalation_seconds: int | None = Field(
        default=None,
        description="How long the escalation team may answer: from the task time limit to the availability "
        "lifetime minus the deadline.",
    )
    adaptive: bool = Field(
        default=False,
        description="Adaptive reviewers: a loop asks one worker first and one more (up to task_count, which "
        "must be 2 or 3) only while the answers disagree with the model's prediction or with each other.",
    )
    adaptive_model_agreement: float | None = Field(
        default=None,
        description="With adaptive: the first answer's agreement with the model (box F1 at IoU 0.5, label "
        "match; 0-1) at or above which the loop completes with it. None: 0.6.",
    )
    adaptive_worker_agreement: float | None = Field(
        default=None,
        description="With adaptive: the answers' agreement with each other (the consolidation's; 0-1) at or "
        "above which the loop completes. None: 0.4.",
    )


class FlowUpdate(Request):
    """The fields of a flow definition that may change; those left out stay. New values apply
    to loops started (task count, availability) or tasks taken (time limit) afterwards."""

    title: str | None = None
    description: str | None = None
    keywords: list[str] | None = None
    task_count: int | None = None
    availability_lifetime_seconds: int | None = None
    time_limit_seconds: int | None = None
    # For these two an explicit null goes back to the default; left out, they stay.
    consolidation: bool | None = None
    consolidation_quorum: int | None = None
    frame_origins: list[str] | None = None
    default_priority: int | None = None
    deadline_seconds: int | None = Field(default=None, description="0 removes the deadline.")
    fallback: Literal["model", "fail"] | None = None
    escalation_team: str | None = Field(default=None, description='"" removes the escalation.')
    escalation_seconds: int | None = None
    adaptive: bool | None = None
    # For these two an explicit null goes back to the default; left out, they stay.
    adaptive_model_agreement: float | None = None
    adaptive_worker_agreement: float | None = None


class Flow(Response):
    name: str
    arn: str
    status: str
    team: str
    task_ui: str
    title: str
    description: str
    output_path: str
    task_count: int
    keywords: list[str]
    availability_lifetime_seconds: int
    time_limit_seconds: int
    role_arn: str | None = None
    input_locations: list[str] | None = None
    created_at: str
    # As they apply (the defaults resolved): see docs/consolidation.md.
    consolidation: bool = False
    consolidation_quorum: int = 1
    frame_origins: list[str] = []
    default_priority: int = 50
    deadline_seconds: int | None = None
    fallback: str = "fail"
    escalation_team: str | None = None
    escalation_seconds: int | None = None
    # As they apply (the defaults resolved; None when adaptive is off): see docs/consolidation.md.
    adaptive: bool = False
    adaptive_model_agreement: float | None = None
    adaptive_worker_agreement: float | None = None
    request_source: str | None = Field(
        default=None,
        description="A2I's built-in task type (HumanLoopRequestSource.AwsManagedHumanLoopRequestSource, set "
        "through CreateFlowDefinition), e.g. 'AWS/Rekognition/DetectModerationLabels/Image/V3'; null: a custom "
        "task type.",
    )
    activation_conditions: dict[str, Any] | None = Field(
        default=None,
        description="With a built-in task type: its HumanLoopActivationConditions as an object "
        '({"Conditions": [...]}); null: none.',
    )


# -- human loops ---------------------------------------------------------------------


class LoopStart(Request):
    name: str
    flow: str
    input: dict[str, Any] | None = Field(default=None, description="The input as a JSON object.")
    input_content: str | None = Field(
        default=None, description="The input as a string holding a JSON object (A2I's form)."
    )
    content_classifiers: list[str] | None = None
    priority: int | None = Field(
        default=None, description="0 (least urgent) to 100; None: the flow's default priority."
    )

    @model_validator(mode="after")
    def _one_input(self) -> LoopStart:
        if (self.input is None) == (self.input_content is None):
            raise ValueError("give exactly one of 'input' (an object) or 'input_content' (a string)")
        return self


class LoopStarted(Response):
    name: str
    arn: str
    created: bool


class Loop(Response):
    name: str
    arn: str
    flow: str
    flow_arn: str
    status: str
    created_at: str
    failure_code: str | None = None
    failure_reason: str | None = None
    output_uri: str | None = None
    priority: int = 50
    deadline: str | None = None
    fallback: dict[str, Any] | None = Field(
        default=None,
        description="Set when the deadline or the declines finished the loop (output.json's loopinFallback).",
    )
    escalation: dict[str, Any] | None = Field(
        default=None,
        description="Set when the loop escalated to a second team (output.json's loopinEscalation).",
    )


class LoopDetail(Loop):
    input: dict[str, Any]
    answers_received: int
    task_count: int
    declined_by: list[str] = []


class LoopPage(Response):
    loops: list[Loop]
    next_token: str | None = None


# -- worker side ---------------------------------------------------------------------


class SignIn(Request):
    email: str
    password: str


class AcceptInvitation(Request):
    token: str
    password: str


class WorkerSession(Response):
    token: str
    expires_at: str
    worker: Worker


class Job(Response):
    flow: str
    title: str
    description: str
    keywords: list[str]
    tasks_waiting: int
    escalated: bool = Field(
        default=False, description="You have this job only because its loops escalated to one of your teams."
    )


class NextTask(Request):
    flow: str | None = None


class Task(Response):
    task_id: int
    flow: str
    title: str
    description: str
    input: dict[str, Any]
    accepted_at: str
    lease_expires_at: str
    time_limit_seconds: int


class TaskSubmit(Request):
    answer: dict[str, Any]


# -- models and endpoints ------------------------------------------------------------


# The lower bound of "uncertain": detections scoring under it are the detector's background
# noise, not doubts. Chosen from the bundled photos (docs/endpoints.md, "Choosing the lower
# bound"): the built-in detector's noise there scores up to 0.27, its real doubts from 0.32 on.
DEFAULT_MIN_SCORE = 0.3


class RoutingRule(BaseModel):
    """When an endpoint sends an image to people, and to which flow: when a detection is
    uncertain, scoring in [lower bound, threshold) (the lower bound is ``min_score``, or the
    class's own in ``class_min_scores``), or when the image is drawn for an audit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: str = Field(description="Flow definition that reviews the routed images.")
    threshold: float = Field(default=0.9, ge=0.0, le=1.0, description="Detections scoring below it need a person.")
    min_score: float = Field(
        default=DEFAULT_MIN_SCORE,
        ge=0.0,
        le=1.0,
        description="The lower bound of 'uncertain' (the noise floor): detections below it are background noise, "
        "they neither send the image to a person nor are offered to them. Must be below the threshold.",
    )
    class_min_scores: dict[str, float] | None = Field(
        default=None,
        description="A lower bound per class label, in place of min_score for that class (each 0-1, below the "
        "threshold); classes not listed use min_score.",
    )
    classes: tuple[str, ...] | None = Field(
        default=None, description="Only these class labels count (and are offered as labels); None: all."
    )
    labels: tuple[str, ...] | None = Field(
        default=None,
        description="The label set offered to the reviewer (the loop input's 'labels'); None: the classes, "
        "else every class of the model.",
    )
    sample_percent: float = Field(
        default=0.0, ge=0.0, le=100.0, description="Share of images sent for an audit even when all is confident."
    )

    @model_validator(mode="before")
    @classmethod
    def _low_threshold_keeps_its_meaning(cls, data: Any) -> Any:
        # A threshold at or below the default noise floor, with no floor given: no floor,
        # so "below 0.15 goes to people" still means what it says.
        if isinstance(data, dict) and data.get("min_score") is None:
            threshold = data.get("threshold")
            if isinstance(threshold, int | float) and threshold <= DEFAULT_MIN_SCORE:
                return {**data, "min_score": 0.0}
        return data

    @model_validator(mode="after")
    def _floor_below_threshold(self) -> RoutingRule:
        if self.min_score > 0 and self.min_score >= self.threshold:
            raise ValueError(f"min_score ({self.min_score:g}) must be below the threshold ({self.threshold:g})")
        for label, floor in (self.class_min_scores or {}).items():
            if not 0.0 <= floor <= 1.0:
                raise ValueError(f"class_min_scores[{label!r}] ({floor:g}) must be from 0 to 1")
            if floor > 0 and floor >= self.threshold:
                raise ValueError(
                    f"class_min_scores[{label!r}] ({floor:g}) must be below the threshold ({self.threshold:g})"
                )
        if self.labels is not None and not self.labels:
            raise ValueError("labels must name at least one label (or be null: every class of the model)")
        return self

    def floor(self, label: str) -> float | None:
        """The lower bound for detections of ``label``; None if the rule ignores the class."""
        if self.classes is not None and label not in self.classes:
            return None
        return (self.class_min_scores or {}).get(label, self.min_score)


class ModelCreate(Request):
    name: str
    builtin: str | None = Field(default=None, description="Register a built-in model under this name.")
    onnx_uri: str | None = Field(default=None, description="file:///path or s3://bucket/key of an ONNX detector.")
    callable: str | None = Field(default=None, description="'module:function' taking a PIL image.")
    spec: dict[str, Any] | None = Field(default=None, description="Input size, layout, normalisation, head, classes.")


class ModelInfo(Response):
    name: str
    arn: str
    kind: str
    builtin_name: str | None = None
    onnx_uri: str | None = None
    callable: str | None = None
    spec: dict[str, Any] | None = None
    created_at: str | None = None


class BuiltinModelInfo(Response):
    name: str
    description: str
    licence: str
    source: str
    version: str
    input_size: tuple[int, int]
    classes: list[str]
    aliases: list[str] = Field(default=[], description="Former names, which still work.")


class VariantSpec(Request):
    variant_name: str = "AllTraffic"
    model: str
    instance_count: int = Field(default=1, description="Inferences that may run at once, per server process.")
    weight: float = 1.0


class EndpointConfigCreate(Request):
    name: str
    variants: list[VariantSpec]


class Record(Response):
    """A nested part of an answer. Its fields are attributes (``result.human_loop.name``);
    ``record["name"]`` and ``record.get("name")`` work too, for code written when these
    parts were plain dicts."""

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in type(self).model_fields else default


class VariantInfo(Record):
    variant_name: str
    model: str
    instance_count: int = 1
    weight: float = 1.0


class EndpointConfigInfo(Response):
    name: str
    arn: str
    variants: list[VariantInfo]
    created_at: str


class EndpointCreate(Request):
    name: str
    config: str
    routing: RoutingRule | None = None


class EndpointUpdate(Request):
    config: str | None = None
    routing: RoutingRule | None = None
    clear_routing: bool = False


class EndpointInfo(Response):
    name: str
    arn: str
    config: str
    status: str
    failure_reason: str | None = None
    routing: RoutingRule | None = None
    created_at: str
    last_modified_at: str


class DetectionOut(Response):
    class_index: int
    label: str
    score: float
    left: float
    top: float
    right: float
    bottom: float


class ModelUsed(Record):
    name: str
    version: str
    variant: str


class ImageSize(Record):
    width: int
    height: int


class RoutingDecision(Record):
    reason: str | None = Field(
        description="'low-confidence', 'audit', 'conditions' (the flow's activation conditions fired), "
        "or None (not routed)."
    )
    flow: str
    threshold: float


class HumanLoopRef(Record):
    name: str
    arn: str
    status: str


class TextLineOut(Record):
    text: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float


class KeyValueOut(Record):
    key: TextLineOut
    value: TextLineOut | None = Field(description="None: the key has no value on the document.")
    confidence: float


class DocumentOut(Record):
    """What a text reader (the built-in ``ppocrv4-document-text``) read: lines in reading
    order and the key-value pairs found among them (docs/endpoints.md)."""

    lines: list[TextLineOut]
    key_values: list[KeyValueOut]


class ModerationLabelOut(Record):
    """Rekognition's ModerationLabel."""

    Name: str
    ParentName: str = Field(description="'' for a top-level label.")
    Confidence: float = Field(description="0-100.")


class ModerationOut(Record):
    """A moderation classifier's answer in the shape of Rekognition's DetectModerationLabels."""

    ModerationLabels: list[ModerationLabelOut]
    ModerationModelVersion: str


class InvocationResult(Response):
    detections: list[DetectionOut]
    model: ModelUsed
    image: ImageSize
    inference_ms: float
    routing: RoutingDecision | None = None
    human_loop: HumanLoopRef | None = None
    prediction_id: int
    document: DocumentOut | None = Field(default=None, description="A text reader's lines and key-value pairs.")
    moderation: ModerationOut | None = Field(default=None, description="A moderation classifier's labels.")


# -- events and webhooks -------------------------------------------------------------


class WebhookCreate(Request):
    name: str
    url: str
    flow: str | None = Field(default=None, description="Only this flow's events; None: every flow.")
    allow_private_network: bool = Field(
        default=False, description="Let the webhook reach loopback or private addresses (an explicit admin choice)."
    )


class WebhookInfo(Response):
    name: str
    url: str
    flow: str | None = None
    allow_private_network: bool
    created_at: str


class WebhookCreated(WebhookInfo):
    secret: str = Field(description="whsec_... for verifying signatures; shown once.")


class DeliveryInfo(Response):
    id: int
    webhook: str
    event_id: str
    loop: str
    loop_status: str
    status: str
    attempts: int
    last_error: str | None = None
    last_status_code: int | None = None
    next_attempt_at: str | None = None
    delivered_at: str | None = None


class ThresholdPoint(Response):
    threshold: float
    routed: int = Field(description="Logged images that would have gone to people at this threshold.")
    missed: int = Field(
        description="Reviewed images that would not have gone to people although people corrected them."
    )


class ThresholdCurve(Response):
    flow: str
    images: int
    reviewed: int
    points: list[ThresholdPoint]


# -- exports, datasets, model-versus-human metrics -------------------------------------


class ExportCreate(Request):
    flow: str
    format: Literal["coco", "yolo", "voc", "manifest", "csv"] = "coco"
    statuses: list[Literal["Completed", "Stopped"]] = Field(default=["Completed"], min_length=1)
    created_after: str | None = None
    created_before: str | None = None
    labels: list[str] | None = None
    changed_only: bool = False
    answers: Literal["consolidated", "per-worker"] = "consolidated"
    images: Literal["reference", "copy"] = "reference"
    target: Literal["zip", "folder", "s3"] = "zip"
    location: str | None = None
    label_attribute: str = "label"


class ExportInfo(Response):
    export_id: str
    flow: str
    format: str
    state: str  # queued | running | succeeded | failed
    settings: dict[str, Any]
    total: int  # loops selected
    done: int  # loops looked at so far
    items: int
    annotations: int
    skipped: int
    progress: float  # 0-1
    location: str | None = None
    size_bytes: int | None = None
    content_sha256: str | None = None
    loops_sha256: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


class DatasetCreate(Request):
    name: str
    export_id: str
    description: str = ""


class DatasetInfo(Response):
    name: str
    description: str
    export_id: str
    flow: str
    format: str
    settings: dict[str, Any]
    loops: int
    items: int
    annotations: int
    location: str
    size_bytes: int
    content_sha256: str
    loops_sha256: str
    created_at: str


class MetricsRow(Response):
    key: str  # the class, flow, endpoint (model) or week this row is about
    loops: int
    model_boxes: int
    human_boxes: int
    kept: int
    moved: int
    relabelled: int
    deleted: int  # false positives: the model's boxes people removed
    added: int  # false negatives: boxes people drew that the model had not
    mean_moved_iou: float | None
    precision: float | None
    recall: float | None
    ap50: float | None


class ModelMetrics(Response):
    flow: str | None
    loops: int
    limit: int
    total: MetricsRow
    per_class: list[MetricsRow]
    per_flow: list[MetricsRow]
    per_endpoint: list[MetricsRow]
    per_week: list[MetricsRow]


# -- batch jobs -------------------------------------------------------------------------


class BatchJobCreate(Request):
    endpoint: str = Field(description="The endpoint whose model and routing rule the job uses (InService).")
    output: str = Field(description="Where the answers go: s3://bucket/prefix (the local store or S3).")
    source: str | None = Field(
        default=None,
        description="The images: an s3://bucket/prefix/ listed through the store, or a local folder "
        "(absolute path or file:///) inside the data directory or batch_local_roots.",
    )
    manifest: str | None = Field(
        default=None,
        description="Instead of source: a manifest (s3:// or a local file), one image URI per line or "
        'Ground Truth\'s {"source-ref": "s3://..."} lines.',
    )
    name: str | None = Field(default=None, description="The job's name (default: generated). Same name, same job.")
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="What runs the model: 'local' (threads in the server process) or 'ray' (tasks on a Ray "
        "cluster; needs loopin[ray]). Routing, loops and checkpoints stay in the server either way.",
    )
    address: str | None = Field(
        default=None,
        max_length=512,
        description="With executor 'ray': the cluster, 'auto' (the default: RAY_ADDRESS or the cluster "
        "started on the server's host), 'host:port' or 'ray://host:port'.",
    )


class BatchJobInfo(Response):
    name: str
    endpoint: str
    status: str  # Pending | Running | Completed | Cancelled | Failed
    source_kind: str
    source: str
    output: str
    total: int
    done: int
    failed: int
    pending: int
    routed: int
    executor: str = "local"
    address: str | None = None
    failure_reason: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    predictions_uri: str


class BatchFailure(Response):
    uri: str
    key: str
    reason: str


# -- gold items and worker quality ------------------------------------------------------


class GoldSettings(Request):
    gold_rate: float = Field(default=0.0, description="The share of the tasks served to a worker that are gold (0-1).")
    gold_min_accuracy: float | None = Field(
        default=None,
        description="A worker whose gold accuracy falls below it is paused from the flow (0-1; null: never).",
    )
    gold_min_scored: int = Field(default=10, description="Scored gold tasks a worker needs before the limit applies.")


class GoldItemCreate(Request):
    input: dict[str, Any] | str = Field(description="The InputContent a loop would get (an object or its JSON text).")
    answer: dict[str, Any] = Field(description="The known answer, as one worker's answerContent in output.json.")
    note: str = ""


class GoldItemsCreate(Request):
    items: list[GoldItemCreate]


class GoldItem(Response):
    id: int
    flow: str
    input: dict[str, Any]
    answer: dict[str, Any]
    note: str
    created_at: str
    answered: int = Field(description="How many workers answered it.")
    mean_score: float | None = Field(description="Their mean score (0-1).")


class WorkerPauseInfo(Response):
    paused_at: str
    reason: str
    accuracy: float
    scored: int


class WorkerQualityRow(Response):
    worker_id: str
    email: str
    name: str
    gold_scored: int
    gold_accuracy: float | None
    consolidated_loops: int
    agreement: float | None = Field(description="Share of their consolidated loops where their answer contributed.")
    tasks: int
    seconds_per_task: float | None
    tasks_per_hour: float | None
    paused: WorkerPauseInfo | None


class DayAccuracy(Response):
    day: str
    worker_id: str
    accuracy: float
    scored: int


class WorkerQuality(Response):
    flow: str
    settings: GoldSettings
    workers: list[WorkerQualityRow]
    accuracy_by_day: list[DayAccuracy]
