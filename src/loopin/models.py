"""Database tables. Times are integer milliseconds since the Unix epoch (UTC): exact,
sortable and the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGSERIAL.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class AccessKey(Base):
    __tablename__ = "access_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Encrypted with the server's secret key: SigV4 needs the secret itself, not a hash.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class Workteam(Base):
    __tablename__ = "workteams"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    worker_id: Mapped[str] = mapped_column(String(16), unique=True)  # public, 16 hex like A2I's
    sub: Mapped[str] = mapped_column(String(36), unique=True)
    # In every console session cookie; moved on at sign-out, so those issued before are dead.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # In every API token; moved on when the worker is disabled or removed, so tokens issued
    # before stay dead after the worker is enabled again.
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # invited | active | disabled
    invitation_hash: Mapped[str | None] = mapped_column(String(64))
    invitation_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int | None] = mapped_column(BigInteger)


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(ForeignKey("workteams.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True, index=True)


class TaskUi(Base):
    __tablename__ = "task_uis"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    content: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)


class FlowDefinition(Base):
    __tablename__ = "flow_definitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("workteams.id"), index=True)
    task_ui_id: Mapped[int] = mapped_column(ForeignKey("task_uis.id"), index=True)
    title: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(255))
    keywords: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    task_count: Mapped[int] = mapped_column(Integer)
    availability_lifetime_s: Mapped[int] = mapped_column(Integer)
    time_limit_s: Mapped[int] = mapped_column(Integer)
    output_path: Mapped[str] = mapped_column(String(1024))
    role_arn: Mapped[str | None] = mapped_column(String(2048))
    # None: the default (on when task_count > 1; quorum a majority of task_count).
    consolidation: Mapped[bool | None] = mapped_column()
    consolidation_quorum: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # JSON list of s3:// prefixes that loop inputs may name and tasks may grant read access
    # to; None: anywhere but the output areas (see flows.may_grant).
    input_locations: Mapped[str | None] = mapped_column(Text, nullable=True)
    # JSON list of extra https origins the flow's task frames may load from (see flows).
    frame_origins: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # Deadlines and priorities (docs/deadlines.md): a loop's priority when its start gives
    # none; the time a loop has to be answered in (None: no deadline) and what answers it
    # when nobody did (``model`` | ``fail``).
    default_priority: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    deadline_s: Mapped[int | None] = mapped_column(Integer)
    fallback: Mapped[str] = mapped_column(String(8), default="fail", server_default="fail")
    # Escalation (docs/deadlines.md): before the fallback, a second team may answer for
    # ``escalation_s`` seconds. Both None: no escalation.
    escalation_team_id: Mapped[int | None] = mapped_column(
        ForeignKey("workteams.id", name="fk_flows_escalation_team"), index=True
    )
    escalation_s: Mapped[int | None] = mapped_column(Integer)
    # A2I's built-in task types (see activation): the AwsManagedHumanLoopRequestSource and the
    # HumanLoopActivationConditions JSON string exactly as given (None: a custom task type).
    request_source: Mapped[str | None] = mapped_column(String(64))
    activation_conditions: Mapped[str | None] = mapped_column(Text)
    # Adaptive reviewers (docs/consolidation.md#adaptive-reviewers): a loop starts with one
    # task and gets another (up to task_count) only while its answers disagree with the
    # model or with each other beyond these limits (None: the defaults, see adaptive.py).
    adaptive: Mapped[bool] = mapped_column(default=False, server_default=false())
    adaptive_model_agreement: Mapped[float | None] = mapped_column()
    adaptive_worker_agreement: Mapped[float | None] = mapped_column()


class HumanLoop(Base):
    __tablename__ = "human_loops"
    __table_args__ = (
        Index("ix_loops_flow_created", "flow_id", "created_at", "id"),
        Index("ix_loops_created", "created_at", "id"),
        # The admin console's filters: every combination of flow and status is a range scan.
        Index("ix_loops_status_created", "status", "created_at", "id"),
        Index("ix_loops_flow_status_created", "flow_id", "status", "created_at", "id"),
        Index(
            "ix_loops_open_expiry",
            "expires_at",
            sqlite_where=text("status = 'InProgress'"),
            postgresql_where=text("status = 'InProgress'"),
        ),
        Index(
            "ix_loops_open_deadline",
            "deadline_at",
            sqlite_where=text("status = 'InProgress' AND deadline_at IS NOT NULL"),
            postgresql_where=text("status = 'InProgress' AND deadline_at IS NOT NULL"),
        ),
        Index(
            "ix_loops_open_escalation",
            "escalation_ends_at",
            sqlite_where=text("status = 'InProgress' AND escalation_ends_at IS NOT NULL"),
            postgresql_where=text("status = 'InProgress' AND escalation_ends_at IS NOT NULL"),
        ),
        Index(
            "ix_loops_output_pending",
            "output_next_attempt_at",
            sqlite_where=text("output_state = 'pending'"),
            postgresql_where=text("output_state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flow_definitions.id"))
    # active_history: the status before a change is always known, for loop_stats' counters.
    status: Mapped[str] = mapped_column(String(16), active_history=True)
    input_content: Mapped[str] = mapped_column(Text)
    input_sha256: Mapped[str] = mapped_column(String(64))
    content_classifiers: Mapped[str | None] = mapped_column(Text)  # JSON list
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(String(1024))
    output_uri: Mapped[str | None] = mapped_column(String(2048))
    # Output writing is durable: 'pending' survives a crash or a store outage and is
    # retried by the jobs until the file exists; only then does the loop take
    # ``output_final_status``.
    output_state: Mapped[str] = mapped_column(String(16), default="none")
    output_final_status: Mapped[str | None] = mapped_column(String(16))
    output_next_attempt_at: Mapped[int | None] = mapped_column(BigInteger)
    output_attempts: Mapped[int] = mapped_column(Integer, default=0)
    output_last_error: Mapped[str | None] = mapped_column(String(1024))
    priority: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    deadline_at: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the loop was answered by its fallback (JSON: kind, reason, at, and the
    # model's answer for kind 'model'); written to output.json as ``loopinFallback``.
    fallback_info: Mapped[str | None] = mapped_column(Text)
    # Set when the loop escalated to a second team (JSON: team, trigger, reason, time,
    # endsAt); written to output.json as ``loopinEscalation``. The team's id and the end
    # of the escalation are kept as columns for the claim and the background runner; no
    # foreign key: a finished loop keeps the record after its team is deleted.
    escalation_info: Mapped[str | None] = mapped_column(Text)
    escalation_team_id: Mapped[int | None] = mapped_column(BigInteger)
    escalation_ends_at: Mapped[int | None] = mapped_column(BigInteger)
    # Set when the loop started with adaptive reviewers (JSON: its task count and limits
    # then, and each decision to add a task or stop); written to output.json as
    # ``loopinAdaptive``.
    adaptive_info: Mapped[str | None] = mapped_column(Text)


class TaskSlot(Base):
    """One of a loop's TaskCount assignments."""

    __tablename__ = "task_slots"
    __table_args__ = (
        UniqueConstraint("loop_id", "slot_index"),
        # The claim: a flow's available slots, most urgent first (``queue_rank``, see
        # ``loops.queue_rank``), then the oldest loop.
        Index(
            "ix_slots_available_rank",
            "flow_id",
            "queue_rank",
            "loop_id",
            "slot_index",
            sqlite_where=text("status = 'available'"),
            postgresql_where=text("status = 'available'"),
        ),
        # The claim of an escalation team's workers: the slots of loops escalated to a team.
        Index(
            "ix_slots_escalated_rank",
            "escalation_team_id",
            "queue_rank",
            "loop_id",
            "slot_index",
            sqlite_where=text("status = 'available' AND escalation_team_id IS NOT NULL"),
            postgresql_where=text("status = 'available' AND escalation_team_id IS NOT NULL"),
        ),
        Index(
            "ix_slots_held_lease",
            "lease_expires_at",
            sqlite_where=text("status = 'held'"),
            postgresql_where=text("status = 'held'"),
        ),
        # Distinct workers: one worker never holds or answers two slots of one loop.
        Index(
            "ux_slots_loop_worker",
            "loop_id",
            "worker_id",
            unique=True,
            sqlite_where=text("worker_id IS NOT NULL"),
            postgresql_where=text("worker_id IS NOT NULL"),
        ),
        Index("ix_slots_worker_status", "worker_id", "status"),
        # The overview's sample of recent answers (median time to a human answer).
        Index(
            "ix_slots_submitted",
            "submitted_at",
            sqlite_where=text("status = 'submitted'"),
            postgresql_where=text("status = 'submitted'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    loop_id: Mapped[int] = mapped_column(ForeignKey("human_loops.id", ondelete="CASCADE"))
    flow_id: Mapped[int] = mapped_column(BigInteger)  # copied from the loop for the claim query
    slot_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # available | held | submitted | cancelled
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    accepted_at: Mapped[int | None] = mapped_column(BigInteger)
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    submitted_at: Mapped[int | None] = mapped_column(BigInteger)
    answer: Mapped[str | None] = mapped_column(Text)  # JSON object
    # Static claim order, fixed when the loop starts: smaller is served first.
    queue_rank: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The team the loop escalated to (copied from the loop for the claim query), whose
    # workers may claim the slot besides the flow's team; None: not escalated.
    escalation_team_id: Mapped[int | None] = mapped_column(BigInteger)


class LoopStatusCount(Base):
    """How many loops of a flow are in a status now, spread over a few shard rows so that
    concurrent commits rarely wait on the same row; the count is the sum over shards.
    Maintained by ``loop_stats`` in the transaction of every change."""

    __tablename__ = "loop_status_counts"

    flow_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class LoopDayCount(Base):
    """Loops created on a UTC day (days since the epoch), by flow and current status."""

    __tablename__ = "loop_day_counts"

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class InvocationHourCount(Base):
    """Endpoint invocations per hour (hours since the epoch), and how many went to people."""

    __tablename__ = "invocation_hour_counts"

    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger)
    routed: Mapped[int] = mapped_column(BigInteger)


class Decline(Base):
    """A worker declined a loop and is never offered it again."""

    __tablename__ = "declines"

    loop_id: Mapped[int] = mapped_column(ForeignKey("human_loops.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True)
    declined_at: Mapped[int] = mapped_column(BigInteger)


class Model(Base):
    """A user-registered model: an ONNX detector with its spec, or a Python callable.
    Built-in models are not rows: they are always available by name."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # builtin | onnx | callable
    builtin_name: Mapped[str | None] = mapped_column(String(63))
    artifact_uri: Mapped[str | None] = mapped_column(String(1024))  # file:// or s3:// ONNX file
    spec: Mapped[str | None] = mapped_column(Text)  # JSON of inference.ModelSpec
    callable_target: Mapped[str | None] = mapped_column(String(256))
    aws_definition: Mapped[str | None] = mapped_column(Text)  # JSON, echoed by the SageMaker API
    created_at: Mapped[int] = mapped_column(BigInteger)


class EndpointConfig(Base):
    __tablename__ = "endpoint_configs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    variants: Mapped[str] = mapped_column(Text)  # JSON list of {variant_name, model, instance_count, weight}
    created_at: Mapped[int] = mapped_column(BigInteger)


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    config_name: Mapped[str] = mapped_column(String(63))
    # While Updating: the config being loaded; the old one keeps serving until it is ready.
    pending_config_name: Mapped[str | None] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))  # Creating | InService | Updating | Failed
    failure_reason: Mapped[str | None] = mapped_column(String(1024))
    # Bumped whenever what is served changes, so every process reloads its copy.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    routing: Mapped[str | None] = mapped_column(Text)  # JSON of routing.RoutingRule
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_modified_at: Mapped[int] = mapped_column(BigInteger)


class Prediction(Base):
    """The prediction log: every invocation's detections and routing decision, so that a
    threshold can be replayed later against what the model said and what humans answered."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_endpoint_created", "endpoint_name", "created_at"),
        Index("ix_predictions_loop", "loop_name"),
        Index("ix_predictions_flow", "flow_name", "id"),  # the threshold replay: a flow's latest
        UniqueConstraint("endpoint_name", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint_name: Mapped[str] = mapped_column(String(63))
    model_name: Mapped[str] = mapped_column(String(63))
    image_sha256: Mapped[str] = mapped_column(String(64))
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    detections: Mapped[str] = mapped_column(Text)  # JSON list
    flow_name: Mapped[str | None] = mapped_column(String(63))
    threshold: Mapped[float | None] = mapped_column()
    routed_reason: Mapped[str | None] = mapped_column(String(16))  # low-confidence | audit | None
    loop_name: Mapped[str | None] = mapped_column(String(63))
    image_uri: Mapped[str | None] = mapped_column(String(1024))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    response: Mapped[str] = mapped_column(Text)  # the JSON answered, replayed for a retried key
    created_at: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    """The outbox: one row per loop status change, written in the same transaction as the
    change. ``seq`` orders the stream; ``event_id`` is the id receivers de-duplicate on."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "ix_events_unfanned",
            "seq",
            sqlite_where=text("fanned_out = 0"),
            postgresql_where=text("fanned_out = false"),
        ),
        Index("ix_events_loop", "loop_name", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    loop_name: Mapped[str] = mapped_column(String(63))
    flow_name: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))
    loop_created_at: Mapped[int] = mapped_column(BigInteger)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(String(1024))
    output_uri: Mapped[str | None] = mapped_column(String(2048))
    # loopin's extra data for the event (JSON object), e.g. {"consolidation": {...}}.
    data: Mapped[str | None] = mapped_column(Text)
    fallback_info: Mapped[str | None] = mapped_column(Text)  # JSON, when a fallback answered
    fanned_out: Mapped[bool] = mapped_column(default=False)  # delivery rows created
    created_at: Mapped[int] = mapped_column(BigInteger)


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    flow_name: Mapped[str | None] = mapped_column(String(63))  # None: every flow
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # Only an admin's explicit choice lets a webhook reach loopback or private addresses.
    allow_private_network: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_seq", "webhook_id"),
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_deliveries_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq", ondelete="CASCADE"))
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(1024))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Admin(Base):
    """Someone who runs loopin through the admin console. Separate from workers: a worker's
    session or token never opens an admin page."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sub: Mapped[str] = mapped_column(String(36), unique=True)  # changes on password change: ends sessions
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # moved on at sign-out
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # active | disabled
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int | None] = mapped_column(BigInteger)


class AdminSetupLink(Base):
    """A one-time link, printed by the server on a start with no admin, to create the first
    admin. Only its hash is kept."""

    __tablename__ = "admin_setup_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class SignInFailure(Base):
    """One counted sign-in attempt (see ``sign_in_limits``): per e-mail address and per
    client address, shared by every server process."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_key_at", "key", "at_ms"), Index("ix_sign_in_failures_at", "at_ms"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300))
    at_ms: Mapped[int] = mapped_column(BigInteger)


class ExportJob(Base):
    """An export of a flow's finished loops to a training format, run in the background by
    whichever server process claims it (a lease, like the outputs); ``done`` of ``total``
    loops is its progress."""

    __tablename__ = "export_jobs"
    __table_args__ = (
        Index("ix_export_jobs_due", "state", "lease_expires_at"),
        Index("ix_export_jobs_flow", "flow_name", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    export_id: Mapped[str] = mapped_column(String(40), unique=True)
    flow_name: Mapped[str] = mapped_column(String(63))
    format: Mapped[str] = mapped_column(String(16))
    settings: Mapped[str] = mapped_column(Text)  # JSON of exports.ExportSpec
    state: Mapped[str] = mapped_column(String(16))  # queued | running | succeeded | failed
    owner: Mapped[str | None] = mapped_column(String(32))  # the claim's random token
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)  # loops selected (before 'changed only')
    done: Mapped[int] = mapped_column(Integer, default=0)  # loops looked at so far
    items: Mapped[int] = mapped_column(Integer, default=0)  # images (or image-answers) written
    annotations: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    location: Mapped[str | None] = mapped_column(String(2048))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    loops_sha256: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)


class Dataset(Base):
    """A named, immutable snapshot of a finished export: which loops (``loops_sha256`` and
    the export's ``loops.txt``), which settings, and the hash of what was written."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(256), default="")
    export_id: Mapped[str] = mapped_column(String(40), index=True)
    flow_name: Mapped[str] = mapped_column(String(63))
    format: Mapped[str] = mapped_column(String(16))
    settings: Mapped[str] = mapped_column(Text)
    loops: Mapped[int] = mapped_column(Integer)
    items: Mapped[int] = mapped_column(Integer)
    annotations: Mapped[int] = mapped_column(Integer)
    location: Mapped[str] = mapped_column(String(2048))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_sha256: Mapped[str] = mapped_column(String(64))
    loops_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)


class BatchJob(Base):
    """A batch job: an endpoint's model run over every image of a source (an S3 prefix, a
    local folder inside an allowed root, or a manifest). The runner that holds the lease
    (``lease_owner`` until ``lease_expires_at``) is the only one working on it."""

    __tablename__ = "batch_jobs"
    __table_args__ = (Index("ix_batch_jobs_status", "status", "lease_expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    endpoint_name: Mapped[str] = mapped_column(String(63))
    source_kind: Mapped[str] = mapped_column(String(16))  # prefix | folder | manifest
    source_uri: Mapped[str] = mapped_column(String(1024))
    output_uri: Mapped[str] = mapped_column(String(1024))
    executor: Mapped[str] = mapped_column(String(16), server_default="local")  # local | ray
    executor_address: Mapped[str | None] = mapped_column(String(512))  # ray: auto, host:port or ray://host:port
    status: Mapped[str] = mapped_column(String(16))  # Pending | Running | Completed | Cancelled | Failed
    total: Mapped[int] = mapped_column(Integer)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)


class BatchItem(Base):
    """One image of a batch job and its checkpoint: pending until its prediction is logged
    and its ``.out`` object written (done) or it was found unreadable (failed, with why)."""

    __tablename__ = "batch_items"
    __table_args__ = (
        UniqueConstraint("job_id", "seq"),
        Index("ix_batch_items_job_status", "job_id", "status", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(2048))
    key: Mapped[str] = mapped_column(String(1024))  # the image's path under its source: <output>/<key>.out
    status: Mapped[str] = mapped_column(String(16))  # pending | done | failed
    reason: Mapped[str | None] = mapped_column(Text)
    prediction_id: Mapped[int | None] = mapped_column(BigInteger)
    loop_name: Mapped[str | None] = mapped_column(String(63))
    result: Mapped[str | None] = mapped_column(Text)  # the predictions.jsonl line
    finished_at: Mapped[int | None] = mapped_column(BigInteger)


class GoldSettings(Base):
    """A flow's gold settings (docs/quality.md): the share of the tasks served to a worker
    that are gold items, and the gold accuracy under which a worker is paused from the flow
    (None: never), counted once they have ``min_scored`` scored gold tasks."""

    __tablename__ = "gold_settings"

    flow_id: Mapped[int] = mapped_column(ForeignKey("flow_definitions.id", ondelete="CASCADE"), primary_key=True)
    rate: Mapped[float] = mapped_column(default=0.0)
    min_accuracy: Mapped[float | None] = mapped_column()
    min_scored: Mapped[int] = mapped_column(Integer, default=10)


class GoldItem(Base):
    """An input with a known answer (one worker's answerContent), served to workers mixed
    into the flow's tasks and scored."""

    __tablename__ = "gold_items"
    __table_args__ = (Index("ix_gold_items_flow", "flow_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flow_definitions.id", ondelete="CASCADE"))
    input_content: Mapped[str] = mapped_column(Text)  # JSON object, as a loop's InputContent
    answer: Mapped[str] = mapped_column(Text)  # JSON object, as one worker's answerContent
    note: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)


class GoldTask(Base):
    """A gold item served to one worker (at most once per item and worker). ``id`` comes
    from the task slots' id space (see ``gold_serving``), so that it reads as any task's id."""

    __tablename__ = "gold_tasks"
    __table_args__ = (
        UniqueConstraint("gold_item_id", "worker_id"),
        Index("ix_gold_tasks_worker_flow", "worker_id", "flow_id", "status"),
        Index("ix_gold_tasks_flow_submitted", "flow_id", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Kept (NULL) when the item is deleted, so that the worker's score stays.
    gold_item_id: Mapped[int | None] = mapped_column(ForeignKey("gold_items.id", ondelete="SET NULL"))
    flow_id: Mapped[int] = mapped_column(ForeignKey("flow_definitions.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # held | submitted | released | declined
    accepted_at: Mapped[int] = mapped_column(BigInteger)
    lease_expires_at: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[int | None] = mapped_column(BigInteger)
    answer: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column()  # 0..1, set on submit


class WorkerPause(Base):
    """A worker paused from a flow because their gold accuracy fell under the flow's limit.
    ``cleared_at`` set: an admin un-paused them; gold tasks submitted after it count anew."""

    __tablename__ = "worker_pauses"

    flow_id: Mapped[int] = mapped_column(ForeignKey("flow_definitions.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True)
    paused_at: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(512))
    accuracy: Mapped[float] = mapped_column()
    scored: Mapped[int] = mapped_column(Integer)
    cleared_at: Mapped[int | None] = mapped_column(BigInteger)


class Generation(Base):
    """A number drawn anew, at random, by every committed change of a kind of row (``name``:
    "flows"), so that processes can keep copies of those rows and know when they are stale
    (``flow_cache``). Random rather than counted, so that two databases (a test's, a
    restored copy) never show the same number for different rows."""

    __tablename__ = "generations"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
