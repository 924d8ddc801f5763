"""Admin console section: teams and their workers. Inviting by e-mail (a batch of up to
50 addresses), resending invitations, disabling, enabling and removing workers, deleting
teams.

Invitation links are shown to the admin only on the page that answers the invite or resend
(no SMTP server set up, or the e-mail failed); they are not stored and cannot be shown again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loopin import mailer, tasks, workforce
from loopin.errors import LoopinError
from loopin.models import Worker, Workteam
from loopin.validation import EMAIL, TEAM_NAME
from loopin.web.consoles.admin.base import AdminPages, SignedInAdmin, to_sign_in
from loopin.web.errors import error_status
from loopin.web.pages import redirect

NOTICES = {
    "created": "Team created. Invite its workers below.",
    "disabled": "{email} is disabled: they are signed out and cannot sign in until you enable them.",
    "enabled": "{email} can sign in again.",
    "removed-member": "{email} is no longer in this team.",
    "removed-worker": "{email} was removed from every team and can no longer sign in. Their past answers stay.",
    "deleted": "Team {team} was deleted.",
}
OUTCOMES = {
    "invited": "Invited",
    "resent": "New invitation (the earlier link no longer works)",
    "reset": "Password reset: they choose a new one from this link (signed out until then)",
    "added": "Existing worker, added to the team",
    "member": "Already in the team",
    "repeated": "Listed more than once",
}


def add_routes(pages: AdminPages) -> None:
    r = pages.router
    settings = pages.ctx.settings
    sign_in_url = settings.resolved_public_url + "/worker/sign-in"

    def now() -> int:
        return pages.ctx.clock.now_ms()

    # -- the list of teams ------------------------------------------------------------

    async def list_page(
        me: SignedInAdmin, status: int = 200, *, done: str = "", team: str = "", **values: Any
    ) -> Response:
        summaries = await pages.read(lambda s: workforce.team_summaries(s, now_ms=now()))
        # The query is the admin's own redirect, but anyone can link here: only a team
        # name can be echoed, so the notice cannot carry a crafted message.
        notice = NOTICES[done].format(team=team) if done == "deleted" and TEAM_NAME.fullmatch(team) else None
        return pages.page(
            "admin/teams.html",
            me,
            status,
            section="teams",
            teams=summaries,
            sign_in_url=sign_in_url,
            notice=notice,
            **values,
        )

    async def teams(request: Request, done: str = "", team: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        return await list_page(me, done=done, team=team)

    async def create_team(request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        name, description = form.get("name").strip(), form.get("description").strip()
        try:
            await pages.write(lambda s: workforce.create_team(s, name=name, description=description, now_ms=now()))
        except LoopinError as exc:
            return await list_page(me, error_status(exc), error=exc.message, name=name, description=description)
        return redirect(_team_path(name) + "?done=created")

    # -- one team ---------------------------------------------------------------------

    async def team_page(me: SignedInAdmin, name: str, status: int = 200, **values: Any) -> Response:
        def load(s: Session) -> tuple[Workteam, list[workforce.Member], list[str]]:
            team = workforce.get_team(s, name)
            return team, workforce.team_members(s, name), workforce.team_flows(s, team)

        team, members, flows = await pages.read(load)
        at = now()
        return pages.page(
            "admin/team.html",
            me,
            status,
            section="teams",
            team=team,
            path=_team_path(team.name),
            members=[_member_row(m, at) for m in members],
            recently_active=sum(workforce.is_recent(m.last_active_at, now_ms=at) for m in members),
            flows=flows,
            sign_in_url=sign_in_url,
            smtp=mailer.enabled(settings),
            sender=mailer.sender(settings),
            max_invites=workforce.MAX_INVITES,
            **values,
        )

    async def team(name: str, request: Request, done: str = "", email: str = "") -> Response:
        me = await run_in_threadpool(pages.signed_in, request)
        if me is None:
            return to_sign_in(request)
        echo = done in NOTICES and done != "deleted" and (EMAIL.fullmatch(email) or "{email}" not in NOTICES[done])
        notice = NOTICES[done].format(email=email) if echo else None  # only an address is echoed
        return await team_page(me, name, notice=notice)

    async def invite(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, form = posted
        text = form.get("emails")
        addresses = workforce.split_addresses(text)
        try:
            invited = await pages.write(lambda s: workforce.invite_workers(s, name, addresses, now_ms=now()))
        except LoopinError as exc:
            if error_status(exc) == 404:
                return pages.error_page(me, exc)
            invalid = exc.details.get("invalid", [])
            return await team_page(me, name, error_status(exc), error=exc.message, invalid=invalid, emails=text)
        return await team_page(me, name, results=await deliver(name, invited))

    def new_link(outcome: str, issue: Callable[..., tuple[Worker, str]]) -> Callable[..., Awaitable[Response]]:
        """A route giving a worker a new one-time link: a resent invitation, or a password reset."""

        async def handler(name: str, request: Request) -> Response:
            posted = await pages.form_post(request)
            if isinstance(posted, Response):
                return posted
            me, form = posted
            email = form.get("email")

            def run(s: Session) -> workforce.Invited:
                worker, token = issue(s, email, now_ms=now())
                return workforce.Invited(worker.email, outcome, worker.status, token)

            try:
                invited = await pages.write(run)
            except LoopinError as exc:
                return await team_page(me, name, error_status(exc), error=exc.message)
            return await team_page(me, name, results=await deliver(name, [invited]))

        return handler

    async def deliver(team_name: str, invited: list[workforce.Invited]) -> list[dict[str, Any]]:
        """E-mail the new invitations (after the commit); the result rows for the page, with
        the link wherever no e-mail went out."""
        links = {i.email: _invitation_url(settings.resolved_public_url, i.token) for i in invited if i.token}
        errors: dict[str, str] = {}
        if mailer.enabled(settings) and links:
            resets = {i.email for i in invited if i.outcome == "reset"}
            mails = [
                mailer.Invitation(to, link, sign_in_url, team_name, password_reset=to in resets)
                for to, link in links.items()
            ]
            errors = await run_in_threadpool(mailer.send_invitations, settings, mails)
        rows = []
        for i in invited:
            link = links[i.email] if i.token else None
            sent = link is not None and mailer.enabled(settings) and i.email not in errors
            rows.append(
                {
                    "email": i.email,
                    "outcome": i.outcome,
                    "text": OUTCOMES[i.outcome],
                    "status": i.status,
                    "sent": sent,
                    "mail_error": errors.get(i.email),
                    "link": None if sent else link,
                }
            )
        return rows

    def worker_action(action: str) -> Callable[[str, Request], Awaitable[Response]]:
        async def handle(name: str, request: Request) -> Response:
            posted = await pages.form_post(request)
            if isinstance(posted, Response):
                return posted
            me, form = posted
            email = form.get("email")

            def run(s: Session) -> str:
                now = pages.ctx.clock.now_ms()
                if action == "disabled":
                    return tasks.set_worker_status(s, email, "disabled", now_ms=now).email
                if action == "enabled":
                    return tasks.set_worker_status(s, email, "active", now_ms=now).email
                if action == "removed-member":
                    tasks.remove_member(s, name, email, now_ms=now)
                    return workforce.get_worker(s, email).email
                return tasks.remove_worker(s, email, now_ms=now).email

            try:
                email = await pages.write(run)
            except LoopinError as exc:
                return await team_page(me, name, error_status(exc), error=exc.message)
            return redirect(_team_path(name) + "?" + urlencode({"done": action, "email": email}))

        return handle

    async def delete(name: str, request: Request) -> Response:
        posted = await pages.form_post(request)
        if isinstance(posted, Response):
            return posted
        me, _ = posted
        try:
            await pages.write(lambda s: workforce.delete_team(s, name))
        except LoopinError as exc:
            return await team_page(me, name, error_status(exc), error=exc.message)
        return redirect("/admin/teams?" + urlencode({"done": "deleted", "team": name}))

    r.add_api_route("/admin/teams", teams, methods=["GET"])
    r.add_api_route("/admin/teams", create_team, methods=["POST"])
    r.add_api_route("/admin/teams/{name}", team, methods=["GET"])
    r.add_api_route("/admin/teams/{name}/invite", invite, methods=["POST"])
    r.add_api_route("/admin/teams/{name}/resend", new_link("resent", workforce.reissue_invitation), methods=["POST"])
    r.add_api_route("/admin/teams/{name}/reset-password", new_link("reset", workforce.reset_password), methods=["POST"])
    for action, path in [
        ("disabled", "disable"),
        ("enabled", "enable"),
        ("removed-member", "remove-member"),
        ("removed-worker", "remove-worker"),
    ]:
        r.add_api_route(f"/admin/teams/{{name}}/{path}", worker_action(action), methods=["POST"])
    r.add_api_route("/admin/teams/{name}/delete", delete, methods=["POST"])


def _team_path(name: str) -> str:
    return "/admin/teams/" + quote(name, safe="")


def _invitation_url(public_url: str, token: str) -> str:
    return f"{public_url}/worker/invitation/{quote(token, safe='')}"


def _member_row(member: workforce.Member, now_ms: int) -> dict[str, Any]:
    worker, at = member.worker, member.last_active_at
    return {
        "email": worker.email,
        "name": worker.name,
        "status": worker.status,
        "last_active": _ago(at, now_ms) if at else "never",
        "last_active_utc": datetime.fromtimestamp(at / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "",
        "recent": workforce.is_recent(at, now_ms=now_ms),
        "can_resend": member.can_resend,
        "can_reset_password": member.can_reset_password,
        "can_enable": member.can_enable,
        "can_disable": worker.status == "active",
    }


def _ago(at_ms: int, now_ms: int) -> str:
    minutes = max(0, now_ms - at_ms) // 60_000
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    if minutes < 60 * 24 * 60:
        return f"{minutes // (24 * 60)} days ago"
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
