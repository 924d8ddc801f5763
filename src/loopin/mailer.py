"""Invitation e-mails to workers, sent with the SMTP settings (``LOOPIN_SMTP_*``).

The caller sends after its transaction has committed: a failed send loses nothing, the
invitation exists and the caller shows its link instead.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape
from urllib.parse import urlsplit

from loopin.config import Settings
from loopin.workforce import INVITATION_TTL_MS

TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Invitation:
    to: str
    link: str  # the one-time link that sets the worker's password
    sign_in_url: str  # the worker console's sign-in page, for later visits
    team: str
    password_reset: bool = False  # the admin reset a forgotten password: same link, other words


def enabled(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def sender(settings: Settings) -> str:
    """``smtp_from``, else the SMTP user name if it is an address, else loopin@<public host>."""
    if settings.smtp_from:
        return settings.smtp_from
    if "@" in settings.smtp_username:
        return settings.smtp_username
    return f"loopin@{urlsplit(settings.resolved_public_url).hostname or 'localhost'}"


def invitation_message(settings: Settings, invitation: Invitation) -> EmailMessage:
    days = INVITATION_TTL_MS // (24 * 3600 * 1000)
    team = invitation.team
    if invitation.password_reset:
        subject = "Choose a new password for the loopin worker console"
        why = "Your admin reset your password for the loopin worker console (team {team})."
        action = "Choose your new password"
        ignore = "If you did not ask for this, tell your admin."
    else:
        subject = f"You are invited to review tasks for team {team}"
        why = "You are invited to join the team {team} and review tasks in the loopin worker console."
        action = "Choose your password"
        ignore = "If you did not expect this invitation, you can ignore this e-mail."
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender(settings)
    message["To"] = invitation.to
    message["Message-ID"] = make_msgid(domain=urlsplit(invitation.sign_in_url).hostname or None)
    message.set_content(
        f"Hello,\n\n{why.format(team=team)}\n\n"
        f"{action} with this link (it works once, for {days} days):\n{invitation.link}\n\n"
        f"After that, sign in with your e-mail address and password at:\n{invitation.sign_in_url}\n\n"
        f"{ignore}\n"
    )
    link, sign_in = escape(invitation.link), escape(invitation.sign_in_url)
    message.add_alternative(
        f"<p>Hello,</p><p>{escape(why).format(team=f'<strong>{escape(team)}</strong>')}</p>"
        f'<p><a href="{link}">{action}</a> (the link works once, for {days} days):<br>{link}</p>'
        f'<p>After that, sign in with your e-mail address and password at <a href="{sign_in}">{sign_in}</a>.</p>'
        f"<p>{escape(ignore)}</p>",
        subtype="html",
    )
    return message


def send_invitations(settings: Settings, invitations: Sequence[Invitation]) -> dict[str, str]:
    """Send each invitation over one SMTP connection; returns the error per address that
    could not be sent (all of them if the server could not be reached)."""
    if not invitations:
        return {}
    errors: dict[str, str] = {}
    sent: set[str] = set()
    try:
        with _connect(settings) as smtp:
            for invitation in invitations:
                try:  # the envelope names the account's address, whatever the headers say
                    smtp.send_message(invitation_message(settings, invitation), to_addrs=[invitation.to])
                    sent.add(invitation.to)
                except smtplib.SMTPServerDisconnected:
                    raise
                except smtplib.SMTPException as exc:  # this address only: go on with the next
                    errors[invitation.to] = _describe(exc)
    except (OSError, smtplib.SMTPException) as exc:  # no connection, or it broke off
        reason = _describe(exc)
        for invitation in invitations:
            if invitation.to not in sent:
                errors.setdefault(invitation.to, reason)
    return errors


def _connect(settings: Settings) -> smtplib.SMTP:
    host, port = settings.smtp_host, settings.smtp_port
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS)
    try:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def _describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [f"{code} {_text(reply)}" for code, reply in exc.recipients.values()]
        return "The mail server refused the address: " + "; ".join(codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"The mail server answered {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPException):
        return f"The mail server failed: {exc}"
    return f"The mail server could not be reached: {exc}"


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply
