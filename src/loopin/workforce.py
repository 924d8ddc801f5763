"""Work teams, workers, membership, passwords and invitations."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Subquery, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopin.errors import (
    AuthenticationError,
    NotFoundError,
    ResourceInUseError,
    ValidationError,
)
from loopin.models import FlowDefinition, HumanLoop, TaskSlot, TeamMember, Worker, Workteam
from loopin.passwords import hash_password, needs_rehash, verify_password
from loopin.validation import EMAIL, TEAM_NAME, check_email, check_name, check_text

INVITATION_TTL_MS = 7 * 24 * 3600 * 1000
MAX_INVITES = 50  # addresses per batch, as in A2I's console
RECENT_MS = 24 * 3600 * 1000  # "recently active": signed in or worked on a task within this


# -- teams ---------------------------------------------------------------------------


def create_team(session: Session, *, name: str, description: str, now_ms: int) -> Workteam:
    check_name(name, what="Team name", pattern=TEAM_NAME)
    check_text(description, what="Description", max_len=200)
    if session.scalar(select(Workteam.id).where(Workteam.name == name)) is not None:
        raise ResourceInUseError(f"A team named '{name}' exists already.")
    team = Workteam(name=name, description=description, created_at=now_ms, updated_at=now_ms)
    session.add(team)
    session.flush()
    return team


def get_team(session: Session, name: str) -> Workteam:
    team = session.scalar(select(Workteam).where(Workteam.name == name))
    if team is None:
        raise NotFoundError(f"No team named '{name}'.")
    return team


def list_teams(session: Session) -> list[Workteam]:
    return list(session.scalars(select(Workteam).order_by(Workteam.name)))


def update_team(session: Session, name: str, *, description: str, now_ms: int) -> Workteam:
    team = get_team(session, name)
    team.description = check_text(description, what="Description", max_len=200)
    team.updated_at = now_ms
    return team


def delete_team(session: Session, name: str) -> None:
    team = get_team(session, name)
    used_by = session.scalars(select(FlowDefinition.name).where(FlowDefinition.team_id == team.id).limit(3)).all()
    if used_by:
        raise ResourceInUseError(
            f"Team '{name}' is used by flow definition(s) {', '.join(used_by)}; delete those first."
        )
    escalating = session.scalars(
        select(FlowDefinition.name).where(FlowDefinition.escalation_team_id == team.id).limit(3)
    ).all()
    if escalating:
        raise ResourceInUseError(
            f"Team '{name}' is the escalation team of flow definition(s) {', '.join(escalating)}; "
            "choose another escalation team for them first."
        )
    escalated = session.scalar(
        select(HumanLoop.name).where(HumanLoop.escalation_team_id == team.id, HumanLoop.status == "InProgress").limit(1)
    )
    if escalated is not None:
        raise ResourceInUseError(
            f"Team '{name}' is answering the escalated human loop '{escalated}'; wait until it ends or stop it."
        )
    session.delete(team)


@dataclass(frozen=True)
class TeamSummary:
    team: Workteam
    members: int
    active: int  # members whose account is active
    recently_active: int  # members active within RECENT_MS
    flows: list[str]


@dataclass(frozen=True)
class Member:
    worker: Worker
    last_active_at: int | None  # the last sign-in or task claim/submit

    @property
    def can_resend(self) -> bool:
        return self.worker.password_hash is None

    @property
    def can_reset_password(self) -> bool:
        return self.worker.status == "active"

    @property
    def can_enable(self) -> bool:
        return self.worker.status == "disabled" and self.worker.password_hash is not None


def team_summaries(session: Session, *, now_ms: int) -> list[TeamSummary]:
    flows: dict[int, list[str]] = {}
    for team_id, flow in session.execute(
        select(FlowDefinition.team_id, FlowDefinition.name).order_by(FlowDefinition.name)
    ):
        flows.setdefault(team_id, []).append(flow)
    members: dict[int, list[Member]] = {}
    last_active = _last_active_query()
    rows = session.execute(
        select(TeamMember.team_id, Worker, last_active.c.at)
        .join(Worker, Worker.id == TeamMember.worker_id)
        .outerjoin(last_active, last_active.c.worker_id == Worker.id)
    )
    for team_id, worker, at in rows:
        members.setdefault(team_id, []).append(Member(worker, _latest(worker.last_seen_at, at)))
    summaries = []
    for team in list_teams(session):
        team_members = members.get(team.id, [])
        summaries.append(
            TeamSummary(
                team=team,
                members=len(team_members),
                active=sum(m.worker.status == "active" for m in team_members),
                recently_active=sum(is_recent(m.last_active_at, now_ms=now_ms) for m in team_members),
                flows=flows.get(team.id, []),
            )
        )
    return summaries


def team_members(session: Session, team_name: str) -> list[Member]:
    team = get_team(session, team_name)
    last_active = _last_active_query()
    rows = session.execute(
        select(Worker, last_active.c.at)
        .join(TeamMember, TeamMember.worker_id == Worker.id)
        .outerjoin(last_active, last_active.c.worker_id == Worker.id)
        .where(TeamMember.team_id == team.id)
        .order_by(Worker.email)
    )
    return [Member(worker, _latest(worker.last_seen_at, at)) for worker, at in rows]


def team_flows(session: Session, team: Workteam) -> list[str]:
    return list(
        session.scalars(
            select(FlowDefinition.name).where(FlowDefinition.team_id == team.id).order_by(FlowDefinition.name)
        )
    )


def is_recent(at_ms: int | None, *, now_ms: int) -> bool:
    return at_ms is not None and now_ms - at_ms < RECENT_MS


def _last_active_query() -> Subquery:
    """Per worker, the latest time they took or answered a task."""
    return (
        select(
            TaskSlot.worker_id,
            func.max(func.coalesce(TaskSlot.submitted_at, TaskSlot.accepted_at)).label("at"),
        )
        .where(TaskSlot.worker_id.is_not(None))
        .group_by(TaskSlot.worker_id)
        .subquery()
    )


def _latest(*times: int | None) -> int | None:
    return max((t for t in times if t is not None), default=None)


def team_member_emails(session: Session, team: Workteam) -> list[str]:
    return list(
        session.scalars(
            select(Worker.email)
            .join(TeamMember, TeamMember.worker_id == Worker.id)
            .where(TeamMember.team_id == team.id)
            .order_by(Worker.email)
        )
    )


def add_member(session: Session, team_name: str, email: str) -> None:
    team = get_team(session, team_name)
    worker = get_worker(session, email)
    exists = session.get(TeamMember, (team.id, worker.id))
    if exists is None:
        session.add(TeamMember(team_id=team.id, worker_id=worker.id))


def remove_member(session: Session, team_name: str, email: str) -> None:
    team = get_team(session, team_name)
    worker = get_worker(session, email)
    session.execute(delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.worker_id == worker.id))


# -- workers -------------------------------------------------------------------------


def create_worker(
    session: Session,
    *,
    email: str,
    name: str,
    teams: Sequence[str] = (),
    password: str | None = None,
    now_ms: int,
) -> tuple[Worker, str | None]:
    """Create a worker; returns it with a one-time invitation token unless a password was set."""
    email = check_email(email)
    check_text(name, what="Name", max_len=128)
    if session.scalar(select(Worker.id).where(Worker.email == email)) is not None:
        raise ResourceInUseError(f"A worker with e-mail '{email}' exists already.")
    team_rows = [get_team(session, t) for t in dict.fromkeys(teams)]
    worker = Worker(
        worker_id=secrets.token_hex(8),
        sub=str(uuid.uuid4()),
        email=email,
        name=name,
        status="invited",
        created_at=now_ms,
    )
    token = None
    if password is not None:
        worker.password_hash = hash_password(password)
        worker.status = "active"
    else:
        token = _new_invitation(worker, now_ms=now_ms)
    session.add(worker)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create with the same e-mail
        raise ResourceInUseError(f"A worker with e-mail '{email}' exists already.") from exc
    for team in team_rows:
        session.add(TeamMember(team_id=team.id, worker_id=worker.id))
    return worker, token


def get_worker(session: Session, email: str) -> Worker:
    worker = session.scalar(select(Worker).where(Worker.email == email.strip().lower()))
    if worker is None:
        raise NotFoundError(f"No worker with e-mail '{email}'.")
    return worker


def list_workers(session: Session, *, team: str | None = None) -> list[Worker]:
    query = select(Worker).order_by(Worker.email)
    if team is not None:
        team_row = get_team(session, team)
        query = query.join(TeamMember, TeamMember.worker_id == Worker.id).where(TeamMember.team_id == team_row.id)
    return list(session.scalars(query))


def worker_team_names(session: Session, worker: Worker) -> list[str]:
    return list(
        session.scalars(
            select(Workteam.name)
            .join(TeamMember, TeamMember.team_id == Workteam.id)
            .where(TeamMember.worker_id == worker.id)
            .order_by(Workteam.name)
        )
    )


def set_worker_status(session: Session, email: str, status: str) -> Worker:
    if status not in ("active", "disabled"):
        raise ValidationError("A worker's status can be set to 'active' or 'disabled'.")
    worker = get_worker(session, email)
    if status == "active" and worker.password_hash is None:
        raise ValidationError(f"Worker '{worker.email}' has not accepted the invitation yet; resend it instead.")
    if status == "disabled":
        worker.token_generation += 1  # API tokens issued before stay dead
    worker.status = status
    return worker


def remove_worker(session: Session, email: str) -> Worker:
    """Disable the worker and take them off every team. Their answers stay in the outputs,
    so the row is kept."""
    worker = get_worker(session, email)
    worker.status = "disabled"
    worker.token_generation += 1
    worker.invitation_hash = None
    session.execute(delete(TeamMember).where(TeamMember.worker_id == worker.id))
    return worker


def end_sessions(session: Session, worker_id: int) -> None:
    """Every worker-console session of the worker stops working (console sign-out)."""
    session.execute(
        update(Worker).where(Worker.id == worker_id).values(session_generation=Worker.session_generation + 1)
    )


def end_api_tokens(session: Session, worker_id: int) -> None:
    """Every API token the worker holds stops working (API sign-out). Tokens carry the
    generation they were issued in, so moving it on ends them all, on every server."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(token_generation=Worker.token_generation + 1))


def reissue_invitation(session: Session, email: str, *, now_ms: int) -> tuple[Worker, str]:
    """A new one-time invitation token (the old link stops working). Also for a worker who
    was disabled or removed before accepting: they are invited again."""
    worker = get_worker(session, email)
    if worker.password_hash is not None:
        raise ValidationError(f"Worker '{worker.email}' has already accepted an invitation.")
    worker.status = "invited"
    return worker, _new_invitation(worker, now_ms=now_ms)


def reset_password(session: Session, email: str, *, now_ms: int) -> tuple[Worker, str]:
    """For a worker who forgot their password: the password is cleared (their sessions end
    at once) and they choose a new one from a one-time link, as from an invitation."""
    worker = get_worker(session, email)
    if worker.status != "active":
        raise ValidationError(f"Worker '{worker.email}' is not active: resend the invitation or enable them instead.")
    worker.password_hash = None
    worker.sub = str(uuid.uuid4())
    worker.status = "invited"
    return worker, _new_invitation(worker, now_ms=now_ms)


# -- inviting a batch ------------------------------------------------------------------


@dataclass(frozen=True)
class Invited:
    email: str
    outcome: str  # invited (new worker) | added (existing worker joined) | member (already was) | repeated
    status: str  # the worker's account status
    token: str | None = None  # a new worker's one-time invitation token


def split_addresses(text: str) -> list[str]:
    """The addresses in ``text``, separated by commas, semicolons, spaces or new lines."""
    return [part for part in re.split(r"[,;\s]+", text) if part]


def address_problem(address: str) -> str | None:
    """Why ``address`` is not an e-mail address, or None if it is one."""
    if len(address) > 254:
        return "is longer than 254 characters"
    if address.count("@") != 1:
        return "needs exactly one @"
    local, domain = address.split("@")
    if not local:
        return "has nothing before the @"
    if "." not in domain.strip("."):
        return "needs a domain with a dot after the @, like example.com"
    if not EMAIL.fullmatch(address):
        return "has a character an e-mail address cannot have"
    return None


def invite_workers(session: Session, team_name: str, addresses: Sequence[str], *, now_ms: int) -> list[Invited]:
    """Invite up to MAX_INVITES addresses to a team: an unknown address becomes an invited
    worker with a one-time token, a known worker joins the team. All or nothing: if any
    address is not valid, the ValidationError names each with its reason (also in
    ``details["invalid"]``) and nothing is written."""
    team = get_team(session, team_name)
    if not addresses:
        raise ValidationError("Enter at least one e-mail address.")
    if len(addresses) > MAX_INVITES:
        raise ValidationError(f"Invite at most {MAX_INVITES} addresses at a time; this list has {len(addresses)}.")
    invalid = [(a, problem) for a in addresses if (problem := address_problem(a))]
    if invalid:
        listed = "; ".join(f"'{a}' {problem}" for a, problem in invalid)
        raise ValidationError(
            f"Nobody was invited: {listed}. Correct the list and invite again.",
            details={"invalid": [{"address": a, "reason": problem} for a, problem in invalid]},
        )
    results: list[Invited] = []
    status: dict[str, str] = {}
    for address in addresses:
        email = check_email(address)
        if email in status:
            results.append(Invited(email, "repeated", status[email]))
            continue
        worker = session.scalar(select(Worker).where(Worker.email == email))
        if worker is None:
            name = email.split("@")[0][:128]
            worker, token = create_worker(session, email=email, name=name, teams=[team.name], now_ms=now_ms)
            results.append(Invited(email, "invited", worker.status, token))
        elif session.get(TeamMember, (team.id, worker.id)) is not None:
            results.append(Invited(email, "member", worker.status))
        else:
            session.add(TeamMember(team_id=team.id, worker_id=worker.id))
            results.append(Invited(email, "added", worker.status))
        status[email] = worker.status
    return results


def accept_invitation(session: Session, token: str, password: str, *, now_ms: int) -> Worker:
    worker = session.scalar(select(Worker).where(Worker.invitation_hash == _token_hash(token)))
    if worker is None or worker.status != "invited" or (worker.invitation_expires_at or 0) <= now_ms:
        raise AuthenticationError("This invitation link is not valid or has expired. Ask your admin for a new one.")
    worker.password_hash = hash_password(password)
    worker.status = "active"
    worker.invitation_hash = None
    worker.invitation_expires_at = None
    worker.last_seen_at = now_ms
    return worker


def sign_in(session: Session, email: str, password: str, *, now_ms: int) -> Worker:
    worker = session.scalar(select(Worker).where(Worker.email == email.strip().lower()))
    stored = worker.password_hash if worker is not None else None
    ok = verify_password(stored, password)
    if worker is None or stored is None or not ok:
        raise AuthenticationError("The e-mail address or password is wrong.")
    if worker.status != "active":
        raise AuthenticationError("This worker account is disabled. Ask your admin.")
    if needs_rehash(stored):
        worker.password_hash = hash_password(password)
    worker.last_seen_at = now_ms
    return worker


def _new_invitation(worker: Worker, *, now_ms: int) -> str:
    token = secrets.token_urlsafe(32)
    worker.invitation_hash = _token_hash(token)
    worker.invitation_expires_at = now_ms + INVITATION_TTL_MS
    return token


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
