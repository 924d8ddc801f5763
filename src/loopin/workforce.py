"""Work teams, workers, membership, passwords and invitations."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopin.errors import (
    AuthenticationError,
    NotFoundError,
    ResourceInUseError,
    ValidationError,
)
from loopin.models import FlowDefinition, TeamMember, Worker, Workteam
from loopin.passwords import hash_password, needs_rehash, verify_password
from loopin.validation import TEAM_NAME, check_email, check_name, check_text

INVITATION_TTL_MS = 7 * 24 * 3600 * 1000


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
    session.delete(team)


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
    worker.status = status
    return worker


def remove_worker(session: Session, email: str) -> Worker:
    """Disable the worker and take them off every team. Their answers stay in the outputs,
    so the row is kept."""
    worker = get_worker(session, email)
    worker.status = "disabled"
    worker.invitation_hash = None
    session.execute(delete(TeamMember).where(TeamMember.worker_id == worker.id))
    return worker


def reissue_invitation(session: Session, email: str, *, now_ms: int) -> tuple[Worker, str]:
    worker = get_worker(session, email)
    if worker.status != "invited":
        raise ValidationError(f"Worker '{worker.email}' has already accepted an invitation.")
    return worker, _new_invitation(worker, now_ms=now_ms)


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
