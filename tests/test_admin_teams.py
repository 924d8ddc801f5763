"""The admin console's teams section over HTTP, on SQLite and PostgreSQL: teams, inviting a
batch of addresses (links shown without SMTP, e-mailed through a real SMTP server process
with it), resending, disabling, removing, deleting; CSRF and role separation."""

from __future__ import annotations

import dataclasses
import mailbox
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from html import unescape
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from fastapi.testclient import TestClient

from loopin import mailer, tasks, workforce
from loopin.clock import ManualClock
from loopin.config import Settings
from loopin.errors import AuthenticationError
from loopin.models import Worker
from loopin.services import Services
from loopin.web.server import create_app
from tests.admin_support import AdminConsole
from tests.helpers import PASSWORD, admin_client, setup_flow
from tests.servers import die_with_parent

TEAM = "/admin/teams/MyTeam"


# -- helpers -----------------------------------------------------------------------------


def create_team(console: AdminConsole, name: str = "MyTeam") -> None:
    console.get("/admin/teams")
    response = console.post("/admin/teams", name=name, description="Reviewers")
    assert response.headers["location"] == f"/admin/teams/{name}?done=created"


Row = dict[str, str | None]


def invite(console: AdminConsole, emails: str, status: int = 200) -> list[Row]:
    """Invite on the team page; the result rows: address, outcome text, link, e-mail state."""
    console.get(TEAM)
    page = console.post(TEAM + "/invite", status, emails=emails).text
    return results(page)


def results(page: str) -> list[Row]:
    table = re.search(r'<table class="data results">(.*?)</table>', page, re.S)
    if table is None:
        return []
    rows = []
    for row in re.findall(r"<tr>\s*<td>(.*?)</tr>", table.group(1), re.S):
        email, outcome = re.match(r"([^<]+)</td>\s*<td>([^<]+)", row).groups()  # type: ignore[union-attr]
        link = re.search(r'data-copy="([^"]+)"', row)
        error = re.search(r'class="field-error">([^<]+)<', row)
        rows.append(
            {
                "email": unescape(email),
                "outcome": unescape(outcome).strip(),
                "link": unescape(link.group(1)) if link else None,
                "sent": "yes" if "E-mail sent" in row else None,
                "error": unescape(error.group(1)) if error else None,
            }
        )
    return rows


def accept(console: AdminConsole, link: str) -> TestClient:
    """The worker opens the invitation link in their own browser and chooses a password."""
    worker = TestClient(console.http.app, follow_redirects=False)
    path = link.removeprefix("http://testserver")
    assert path.startswith("/worker/invitation/"), link
    page = worker.get(path)
    assert page.status_code == 200
    csrf = unescape(re.search(r'name="csrf" value="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    response = worker.post(path, data={"csrf": csrf, "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/worker/jobs", response.text[:300]
    assert worker.get("/worker/jobs").status_code == 200
    return worker


def worker_sign_in(console: AdminConsole, email: str) -> TestClient:
    worker = TestClient(console.http.app, follow_redirects=False)
    page = worker.get("/worker/sign-in")
    csrf = unescape(re.search(r'name="csrf" value="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    response = worker.post("/worker/sign-in", data={"csrf": csrf, "email": email, "password": PASSWORD})
    assert response.status_code == 303, response.text[:300]
    return worker


def add_worker(services: Services, email: str, teams: list[str], *, password: bool = True) -> None:
    with services.db.write() as s:
        workforce.create_worker(
            s, email=email, name="Existing", teams=teams, password=PASSWORD if password else None, now_ms=0
        )


def worker_row(services: Services, email: str) -> tuple[str, list[str]]:
    with services.db.read() as s:
        worker = workforce.get_worker(s, email)
        return worker.status, workforce.worker_team_names(s, worker)


def worker_count(services: Services) -> int:
    with services.db.read() as s:
        return len(s.query(Worker).all())


# -- teams -------------------------------------------------------------------------------


def test_create_team_and_see_it_listed_with_the_worker_sign_in_address(admin_console: AdminConsole):
    page = admin_console.get("/admin/teams")
    assert "No teams yet" in page
    create_team(admin_console)
    page = admin_console.get(TEAM + "?done=created")
    assert "Team created" in page
    assert "<code>http://testserver/worker/sign-in</code>" in page
    assert "No mail server is set up" in page
    page = admin_console.get("/admin/teams")
    assert re.search(r'<a href="/admin/teams/MyTeam">MyTeam</a></td>\s*<td>Reviewers</td>', page)
    assert "http://testserver/worker/sign-in" in page


def test_a_bad_team_name_is_refused_on_the_page(admin_console: AdminConsole, services: Services):
    admin_console.get("/admin/teams")
    page = admin_console.post("/admin/teams", 400, name="my team", description="Reviewers").text
    assert "Team name &#39;my team&#39; is not valid" in page
    assert 'value="my team"' in page
    create_team(admin_console)
    page = admin_console.post("/admin/teams", 409, name="MyTeam", description="Again").text
    assert "exists already" in page
    with services.db.read() as s:
        assert [t.name for t in workforce.list_teams(s)] == ["MyTeam"]


def test_teams_list_counts_members_active_workers_and_flows(
    admin_console: AdminConsole, services: Services, app_client: TestClient, access_key: tuple[str, str]
):
    setup_flow(admin_client(app_client, access_key), workers=3)  # team MyTeam, flow "review"
    with services.db.write() as s:
        workforce.create_worker(s, email="new@myteam.example", name="New", teams=["MyTeam"], now_ms=0)
        workforce.set_worker_status(s, "worker2@myteam.example", "disabled")
    worker_sign_in(admin_console, "worker0@myteam.example")
    page = admin_console.get("/admin/teams")
    row = re.search(r"<td><a href=\"/admin/teams/MyTeam\">.*?</tr>", page, re.S).group(0)  # type: ignore[union-attr]
    cells = re.findall(r'<td class="num">(\d+)</td>', row)
    assert cells == ["4", "2", "1"]  # members, active accounts, active in the last 24 h
    assert '<a href="/admin/flows/review">review</a>' in row


def test_delete_team_is_refused_while_a_flow_uses_it(
    admin_console: AdminConsole, services: Services, app_client: TestClient, access_key: tuple[str, str]
):
    setup_flow(admin_client(app_client, access_key), workers=1)
    page = admin_console.get(TEAM)
    assert '<a href="/admin/flows/review">review</a>' in page
    page = admin_console.post(TEAM + "/delete", 409).text
    assert "Team &#39;MyTeam&#39; is used by flow definition(s) review; delete those first." in page
    create_team(admin_console, "Spare")
    admin_console.get("/admin/teams/Spare")
    response = admin_console.post("/admin/teams/Spare/delete")
    assert response.headers["location"] == "/admin/teams?done=deleted&team=Spare"
    assert "Team Spare was deleted." in admin_console.get(response.headers["location"])
    with services.db.read() as s:
        assert [t.name for t in workforce.list_teams(s)] == ["MyTeam"]
    admin_console.get("/admin/teams/Spare", 404)


# -- inviting ----------------------------------------------------------------------------


def test_invite_a_batch_reports_each_address_and_the_links_work(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    create_team(admin_console, "Other")
    add_worker(services, "old@example.com", ["Other"])
    add_worker(services, "member@example.com", ["MyTeam"])
    rows = invite(
        admin_console,
        "ana@example.com, Ben@Example.com\nold@example.com;  ana@example.com member@example.com",
    )
    assert [(row["email"], row["outcome"], bool(row["link"])) for row in rows] == [
        ("ana@example.com", "Invited", True),
        ("ben@example.com", "Invited", True),
        ("old@example.com", "Existing worker, added to the team", False),
        ("ana@example.com", "Listed more than once", False),
        ("member@example.com", "Already in the team", False),
    ]
    assert "it is shown only this once" in admin_console.last_page
    assert all(str(row["link"]).startswith("http://testserver/worker/invitation/") for row in rows[:2])
    assert worker_row(services, "ana@example.com") == ("invited", ["MyTeam"])
    assert worker_row(services, "old@example.com") == ("active", ["MyTeam", "Other"])
    # The links are not shown again.
    assert "/worker/invitation/" not in admin_console.get(TEAM)
    # Each link lets its worker choose a password and sign in.
    accept(admin_console, str(rows[1]["link"]))
    assert worker_row(services, "ben@example.com") == ("active", ["MyTeam"])
    members = admin_console.get(TEAM)
    assert re.search(r"<td>ben@example.com</td>\s*<td>ben</td>\s*<td><span class=\"badge active\">", members)
    assert re.search(r"<td>ana@example.com</td>\s*<td>ana</td>\s*<td><span class=\"badge invited\">", members)


def test_an_invalid_address_refuses_the_whole_batch_with_each_reason(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    typed = "ok@example.com, bad@, no-at.example.com\nx@localhost, <y@example.com>"
    invite(admin_console, typed, 400)
    page = admin_console.last_page
    assert "Nobody was invited" in page
    reasons = re.findall(r"<li><code>([^<]+)</code> ([^<]+)</li>", page)
    assert [(unescape(a), unescape(r)) for a, r in reasons] == [
        ("bad@", "needs a domain with a dot after the @, like example.com"),
        ("no-at.example.com", "needs exactly one @"),
        ("x@localhost", "needs a domain with a dot after the @, like example.com"),
        ("<y@example.com>", "has a character an e-mail address cannot have"),
    ]
    assert f">{typed.replace('<', '&lt;').replace('>', '&gt;')}</textarea>" in page  # kept to correct it
    assert worker_count(services) == 0


def test_more_than_fifty_addresses_or_none_are_refused(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    invite(admin_console, ", ".join(f"w{i}@example.com" for i in range(51)), 400)
    assert "Invite at most 50 addresses at a time; this list has 51." in admin_console.last_page
    invite(admin_console, " ,\n ", 400)
    assert "Enter at least one e-mail address." in admin_console.last_page
    assert worker_count(services) == 0
    rows = invite(admin_console, ", ".join(f"w{i}@example.com" for i in range(50)))
    assert len(rows) == 50 and all(row["outcome"] == "Invited" for row in rows)


def test_inviting_to_a_missing_team_is_not_found(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    admin_console.get(TEAM)
    page = admin_console.post("/admin/teams/Nope/invite", 404, emails="a@example.com").text
    assert "No team named &#39;Nope&#39;." in page
    assert worker_count(services) == 0


def test_resend_gives_a_new_link_and_the_old_one_stops_working(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    old = invite(admin_console, "ana@example.com")[0]["link"]
    admin_console.get(TEAM)
    assert 'action="/admin/teams/MyTeam/resend"' in admin_console.last_page
    page = admin_console.post(TEAM + "/resend", 200, email="ana@example.com").text
    (row,) = results(page)
    assert row["outcome"] == "New invitation (the earlier link no longer works)"
    assert row["link"] and row["link"] != old
    stale = TestClient(admin_console.http.app, follow_redirects=False)
    path = str(old).removeprefix("http://testserver")
    csrf = unescape(re.search(r'name="csrf" value="([^"]+)"', stale.get(path).text).group(1))  # type: ignore[union-attr]
    response = stale.post(path, data={"csrf": csrf, "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 401
    accept(admin_console, str(row["link"]))
    # An active worker has no invitation to resend.
    admin_console.get(TEAM)
    assert 'action="/admin/teams/MyTeam/resend"' not in admin_console.last_page
    page = admin_console.post(TEAM + "/resend", 400, email="ana@example.com").text
    assert "has already accepted an invitation" in page


def test_a_worker_removed_before_accepting_can_be_invited_again(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    invite(admin_console, "ana@example.com")
    admin_console.get(TEAM)
    admin_console.post(TEAM + "/remove-worker", email="ana@example.com")
    assert worker_row(services, "ana@example.com") == ("disabled", [])
    (row,) = invite(admin_console, "ana@example.com")
    assert row["outcome"] == "Existing worker, added to the team"
    assert "The account is disabled: enable it or resend the invitation below." in admin_console.last_page
    page = admin_console.post(TEAM + "/resend", 200, email="ana@example.com").text
    accept(admin_console, str(results(page)[0]["link"]))
    assert worker_row(services, "ana@example.com") == ("active", ["MyTeam"])


# -- managing workers ----------------------------------------------------------------------


def test_disable_ends_the_workers_session_and_enable_lets_them_back(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    add_worker(services, "ana@example.com", ["MyTeam"])
    worker = worker_sign_in(admin_console, "ana@example.com")
    assert worker.get("/worker/jobs").status_code == 200
    admin_console.get(TEAM)
    response = admin_console.post(TEAM + "/disable", email="ana@example.com")
    assert response.headers["location"] == TEAM + "?done=disabled&email=ana%40example.com"
    page = admin_console.get(response.headers["location"])
    assert "ana@example.com is disabled: they are signed out" in page
    assert re.search(r"<td>ana@example.com</td>.*?badge disabled", page, re.S)
    jobs = worker.get("/worker/jobs")
    assert jobs.status_code == 303 and jobs.headers["location"] == "/worker/sign-in"
    admin_console.post(TEAM + "/enable", email="ana@example.com")
    assert worker.get("/worker/jobs").status_code == 200
    assert worker_row(services, "ana@example.com") == ("active", ["MyTeam"])


def test_reset_password_signs_the_worker_out_and_a_new_link_sets_a_new_one(
    admin_console: AdminConsole, services: Services
):
    create_team(admin_console)
    add_worker(services, "ana@example.com", ["MyTeam"])
    worker = worker_sign_in(admin_console, "ana@example.com")
    admin_console.get(TEAM)
    assert 'action="/admin/teams/MyTeam/reset-password"' in admin_console.last_page
    page = admin_console.post(TEAM + "/reset-password", 200, email="ana@example.com").text
    (row,) = results(page)
    assert row["outcome"].startswith("Password reset") and row["link"]
    assert worker.get("/worker/jobs").headers["location"] == "/worker/sign-in"  # signed out at once
    with services.db.write() as s, pytest.raises(AuthenticationError):
        workforce.sign_in(s, "ana@example.com", PASSWORD, now_ms=1)  # the old password is gone
    accept(admin_console, str(row["link"]))
    assert worker_row(services, "ana@example.com") == ("active", ["MyTeam"])
    # Only an active worker's password can be reset.
    admin_console.get(TEAM)
    admin_console.post(TEAM + "/disable", email="ana@example.com")
    admin_console.get(TEAM)
    page = admin_console.post(TEAM + "/reset-password", 400, email="ana@example.com").text
    assert "is not active" in page


def test_enable_is_refused_for_a_worker_who_never_accepted(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    invite(admin_console, "ana@example.com")
    admin_console.get(TEAM)
    page = admin_console.post(TEAM + "/enable", 400, email="ana@example.com").text
    assert "has not accepted the invitation yet; resend it instead." in page
    assert worker_row(services, "ana@example.com") == ("invited", ["MyTeam"])


def test_remove_from_team_keeps_the_account_and_remove_worker_ends_it(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    create_team(admin_console, "Other")
    add_worker(services, "ana@example.com", ["MyTeam", "Other"])
    add_worker(services, "ben@example.com", ["MyTeam", "Other"])
    admin_console.get(TEAM)
    response = admin_console.post(TEAM + "/remove-member", email="ana@example.com")
    assert "is no longer in this team." in admin_console.get(response.headers["location"])
    assert worker_row(services, "ana@example.com") == ("active", ["Other"])
    assert "<td>ana@example.com</td>" not in admin_console.last_page
    worker = worker_sign_in(admin_console, "ben@example.com")
    response = admin_console.post(TEAM + "/remove-worker", email="ben@example.com")
    assert "was removed from every team" in admin_console.get(response.headers["location"])
    assert worker_row(services, "ben@example.com") == ("disabled", [])
    assert worker.get("/worker/jobs").status_code == 303
    admin_console.post(TEAM + "/disable", 404, email="nobody@example.com")


def test_last_active_shows_sign_ins_and_task_work(
    admin_console: AdminConsole,
    services: Services,
    clock: ManualClock,
    app_client: TestClient,
    access_key: tuple[str, str],
):
    api = admin_client(app_client, access_key)
    setup_flow(api, workers=3)
    page = admin_console.get(TEAM)
    assert "3 members · 0 active in the last 24 h" in page
    worker_sign_in(admin_console, "worker0@myteam.example")
    clock.advance(3 * 3600 + 60)
    api.start_loop("loop-1", flow="review", input={"taskObject": "s3://review-bucket/a.jpg"})
    with services.db.write() as s:
        tasks.claim_next(
            s, workforce.get_worker(s, "worker1@myteam.example"), flow_name="review", now_ms=clock.now_ms()
        )

    page = admin_console.get(TEAM)
    assert "3 members · 2 active in the last 24 h" in page
    assert re.search(r"<td>worker0@myteam.example</td>.*?<span class=\"recent\".*?>3 h ago</span>", page, re.S)
    assert re.search(r"<td>worker1@myteam.example</td>.*?<span class=\"recent\".*?>just now</span>", page, re.S)
    assert re.search(r"<td>worker2@myteam.example</td>(?:(?!</tr>).)*?<span>never</span>", page, re.S)
    clock.advance(2 * 24 * 3600)
    admin_console.sign_in()  # the admin's session ended meanwhile
    page = admin_console.get(TEAM)
    assert "3 members · 0 active in the last 24 h" in page
    assert re.search(r"<td>worker1@myteam.example</td>(?:(?!</tr>).)*?>2 days ago</span>", page, re.S)


# -- e-mail ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """aiosmtpd in its own process, delivering what it receives into a Maildir."""
    maildir = tmp_path_factory.mktemp("smtp") / "maildir"  # created by the server
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Mailbox"]
        + [str(maildir)],
        preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the SMTP server did not start") from None
                time.sleep(0.05)
        yield port, maildir
    finally:
        process.terminate()
        process.wait(timeout=10)


def smtp_console(services: Services, **smtp: object) -> AdminConsole:
    settings = services.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_security": "none", **smtp})
    return AdminConsole(
        create_app(services=dataclasses.replace(services, settings=settings), run_background=False)
    ).sign_in()


def test_invitations_are_emailed_through_smtp_and_their_links_work(
    admin_console: AdminConsole, services: Services, smtp_server: tuple[int, Path]
):
    port, maildir = smtp_server
    box = mailbox.Maildir(maildir)
    box.clear()
    console = smtp_console(services, smtp_port=port, smtp_from="Review team <review@example.com>")
    create_team(console)
    assert "Invitations are e-mailed from <code>Review team &lt;review@example.com&gt;</code>." in console.get(TEAM)
    rows = invite(console, "ana@example.com, ben@example.com")
    assert rows == [
        {"email": email, "outcome": "Invited", "link": None, "sent": "yes", "error": None}
        for email in ("ana@example.com", "ben@example.com")
    ]
    assert "/worker/invitation/" not in console.last_page
    messages: dict[str, EmailMessage] = {}
    for raw in box:
        message = mailbox_message(raw)
        messages[str(message["To"])] = message
    assert sorted(messages) == ["ana@example.com", "ben@example.com"]
    mail = messages["ana@example.com"]
    assert mail["From"] == "Review team <review@example.com>"
    assert mail["Subject"] == "You are invited to review tasks for team MyTeam"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"http://testserver/worker/invitation/\S+", text).group(0)  # type: ignore[union-attr]
    assert f'<a href="{link}">' in html
    assert "sign in with your e-mail address and password at:\nhttp://testserver/worker/sign-in" in text
    accept(console, link)
    assert worker_row(services, "ana@example.com") == ("active", ["MyTeam"])
    # Resending mails a new link.
    box.clear()
    console.get(TEAM)
    (row,) = results(console.post(TEAM + "/resend", 200, email="ben@example.com").text)
    assert row["sent"] == "yes" and row["link"] is None
    (raw,) = list(box)
    assert "/worker/invitation/" in mailbox_message(raw).get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_failed_send_keeps_the_invitation_and_shows_the_link_with_the_error(
    admin_console: AdminConsole, services: Services
):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    console = smtp_console(services, smtp_port=closed)
    create_team(console)
    (row,) = invite(console, "ana@example.com")
    assert row["outcome"] == "Invited" and row["sent"] is None
    assert str(row["error"]).startswith("The e-mail could not be sent: The mail server could not be reached:")
    assert worker_row(services, "ana@example.com") == ("invited", ["MyTeam"])
    accept(console, str(row["link"]))


def test_the_mailer_signs_in_when_a_user_name_is_set_and_reports_a_refusal():
    received: list[tuple[str, list[str]]] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
            received.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            return "250 OK"

    def authenticator(server: object, session: object, envelope: object, mechanism: str, data: object) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"review", b"secret")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        settings = Settings(
            public_url="https://review.example.com",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_username="review",
            smtp_password="secret",
        )
        invitation = mailer.Invitation(
            "ana@example.com", "https://review.example.com/worker/invitation/t", "https://x/worker/sign-in", "MyTeam"
        )
        assert mailer.send_invitations(settings, [invitation]) == {}
        assert received == [("loopin@review.example.com", ["ana@example.com"])]
        wrong = settings.model_copy(update={"smtp_password": "wrong"})
        errors = mailer.send_invitations(wrong, [invitation])
        assert errors["ana@example.com"].startswith("The mail server answered 535"), errors
        assert len(received) == 1
    finally:
        controller.stop()


def mailbox_message(raw: mailbox.MaildirMessage) -> EmailMessage:
    message = message_from_bytes(raw.as_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


# -- who may do what -----------------------------------------------------------------------


def test_a_crafted_link_cannot_put_its_own_words_in_a_notice(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    words = "ALERT: your session expired, sign in again at https://evil.example"
    assert words not in admin_console.get(TEAM, done="disabled", email=words)
    assert "evil.example" not in admin_console.get("/admin/teams", done="deleted", team=words)
    assert "ana@example.com is disabled" in admin_console.get(TEAM, done="disabled", email="ana@example.com")


def test_posts_without_the_csrf_token_are_refused(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    add_worker(services, "ana@example.com", ["MyTeam"])
    http = admin_console.http
    for path, fields in [
        (TEAM + "/invite", {"emails": "ben@example.com"}),
        (TEAM + "/disable", {"email": "ana@example.com"}),
        (TEAM + "/remove-worker", {"email": "ana@example.com"}),
        (TEAM + "/delete", {}),
        ("/admin/teams", {"name": "Other", "description": "x"}),
    ]:
        for token in ({}, {"csrf": "forged"}):
            response = http.post(path, data={**fields, **token})
            assert response.status_code == 403, (path, token)
            assert "Reload it and try again" in response.text
    assert worker_row(services, "ana@example.com") == ("active", ["MyTeam"])
    assert worker_count(services) == 1
    with services.db.read() as s:
        assert [t.name for t in workforce.list_teams(s)] == ["MyTeam"]


def test_a_signed_in_worker_gets_no_admin_page(admin_console: AdminConsole, services: Services):
    create_team(admin_console)
    add_worker(services, "ana@example.com", ["MyTeam"])
    worker = worker_sign_in(admin_console, "ana@example.com")
    cookie = worker.cookies.get("loopin_session")
    assert cookie
    for name in ("loopin_session", "loopin_admin"):  # as sent, and replayed as an admin cookie
        http = TestClient(admin_console.http.app, follow_redirects=False, cookies={name: cookie})
        for path in ("/admin/teams", TEAM):
            response = http.get(path)
            assert response.status_code == 303, (name, path)
            assert response.headers["location"].startswith("/admin/sign-in")
        response = http.post(TEAM + "/invite", data={"emails": "ben@example.com"})
        assert response.status_code == 303 and response.headers["location"] == "/admin/sign-in"
    assert worker_count(services) == 1


def test_a_password_reset_email_says_so():
    settings = Settings(public_url="https://review.example.com")
    reset = mailer.Invitation("ana@example.com", "https://r/l", "https://r/s", "MyTeam", password_reset=True)
    message = mailer.invitation_message(settings, reset)
    assert message["Subject"] == "Choose a new password for the loopin worker console"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Your admin reset your password" in text and "https://r/l" in text and "invited" not in text
