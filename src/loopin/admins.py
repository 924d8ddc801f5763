"""Admin accounts: created with ``loopin admin create`` or, on a fresh install, through the
one-time setup link the server prints when no admin exists yet."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopin.errors import AuthenticationError, NotFoundError, ResourceInUseError, ValidationError
from loopin.models import Admin, AdminSetupLink
from loopin.passwords import hash_password, needs_rehash, verify_password
from loopin.validation import check_email, check_text

SETUP_LINK_TTL_MS = 24 * 3600 * 1000


def create_admin(session: Session, *, email: str, name: str, password: str, now_ms: int) -> Admin:
    email = check_email(email)
    check_text(name, what="Name", min_len=0, max_len=128)
    if session.scalar(select(Admin.id).where(Admin.email == email)) is not None:
        raise ResourceInUseError(f"An admin with e-mail '{email}' exists already.")
    admin = Admin(
        sub=str(uuid.uuid4()),
        email=email,
        name=name,
        password_hash=hash_password(password),
        status="active",
        created_at=now_ms,
    )
    session.add(admin)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create with the same e-mail
        raise ResourceInUseError(f"An admin with e-mail '{email}' exists already.") from exc
    return admin


def get_admin(session: Session, email: str) -> Admin:
    admin = session.scalar(select(Admin).where(Admin.email == email.strip().lower()))
    if admin is None:
        raise NotFoundError(f"No admin with e-mail '{email}'.")
    return admin


def list_admins(session: Session) -> list[Admin]:
    return list(session.scalars(select(Admin).order_by(Admin.email)))


def admin_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Admin)) or 0


def set_password(session: Session, email: str, password: str) -> Admin:
    """A new password; the admin's open sessions end (their ``sub`` changes)."""
    admin = get_admin(session, email)
    admin.password_hash = hash_password(password)
    admin.sub = str(uuid.uuid4())
    return admin


def set_status(session: Session, email: str, status: str) -> Admin:
    if status not in ("active", "disabled"):
        raise ValidationError("An admin's status can be set to 'active' or 'disabled'.")
    admin = get_admin(session, email)
    if status == "disabled" and admin.status == "active":
        others = session.scalar(
            select(func.count()).select_from(Admin).where(Admin.status == "active", Admin.id != admin.id)
        )
        if not others:
            raise ValidationError("This is the last active admin; create another before disabling it.")
    admin.status = status
    return admin


def end_sessions(session: Session, admin_id: int) -> None:
    """Every admin-console session of the admin stops working (sign-out)."""
    session.execute(update(Admin).where(Admin.id == admin_id).values(session_generation=Admin.session_generation + 1))


def sign_in(session: Session, email: str, password: str, *, now_ms: int) -> Admin:
    admin = session.scalar(select(Admin).where(Admin.email == email.strip().lower()))
    stored = admin.password_hash if admin is not None else None
    if admin is None or stored is None or not verify_password(stored, password):
        raise AuthenticationError("The e-mail address or password is wrong.")
    if admin.status != "active":
        raise AuthenticationError("This admin account is disabled.")
    if needs_rehash(stored):
        admin.password_hash = hash_password(password)
    admin.last_seen_at = now_ms
    return admin


def issue_setup_link(session: Session, *, now_ms: int) -> str | None:
    """A one-time token to create the first admin, or None if an admin exists already."""
    if admin_count(session):
        return None
    session.execute(delete(AdminSetupLink).where(AdminSetupLink.expires_at <= now_ms))
    token = secrets.token_urlsafe(32)
    session.add(AdminSetupLink(token_hash=_hash(token), expires_at=now_ms + SETUP_LINK_TTL_MS, created_at=now_ms))
    return token


def setup_link_valid(session: Session, token: str, *, now_ms: int) -> bool:
    link = session.get(AdminSetupLink, _hash(token))
    return link is not None and link.expires_at > now_ms and not admin_count(session)


def create_first_admin(session: Session, token: str, *, email: str, name: str, password: str, now_ms: int) -> Admin:
    """Use a setup link: creates the first admin and spends every setup link.

    Every link is deleted first and the token must be among those deleted: of two setups
    racing with two links, the second finds the links gone (its delete waits for the
    first's) and is refused."""
    spent = session.execute(
        delete(AdminSetupLink).returning(AdminSetupLink.token_hash, AdminSetupLink.expires_at)
    ).all()
    valid = any(h == _hash(token) and expires > now_ms for h, expires in spent)
    if not valid or admin_count(session):
        raise AuthenticationError(
            "This setup link is not valid any more. Restart the server for a new one, "
            "or run `loopin admin create` on the server machine."
        )
    admin = create_admin(session, email=email, name=name, password=password, now_ms=now_ms)
    admin.last_seen_at = now_ms
    return admin


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
