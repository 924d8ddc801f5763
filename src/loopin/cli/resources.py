"""Commands an admin runs against a server's API from any machine (``LOOPIN_URL``,
``LOOPIN_ACCESS_KEY_ID``, ``LOOPIN_SECRET_ACCESS_KEY``): teams, workers, templates, flows,
loops."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from loopin.cli.output import (
    JsonFlag,
    UrlOption,
    api_client,
    emit,
    err,
    json_object,
    out,
    read_arg,
    with_progress,
)
from loopin.client import UNSET, Unset
from loopin.errors import ResourceInUseError, ValidationError

T = TypeVar("T")

teams_app = typer.Typer(help="Work teams.", no_args_is_help=True)
workers_app = typer.Typer(help="Workers: invite, list, enable, disable, remove.", no_args_is_help=True)
templates_app = typer.Typer(help="Task UI templates (Liquid + crowd-* elements).", no_args_is_help=True)
flows_app = typer.Typer(help="Flow definitions.", no_args_is_help=True)
loops_app = typer.Typer(help="Human loops.", no_args_is_help=True)
GROUPS = [
    (teams_app, "teams"),
    (workers_app, "workers"),
    (templates_app, "templates"),
    (flows_app, "flows"),
    (loops_app, "loops"),
]


# -- teams and workers ---------------------------------------------------------------


@teams_app.command("create")
def teams_create(
    name: str,
    description: Annotated[str, typer.Option(help="1-200 characters.")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a work team."""
    emit(api_client(url).create_team(name, description=description), as_json)


@teams_app.command("list")
def teams_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).list_teams(), as_json, ["name", "description", "members", "created_at"])


@teams_app.command("describe")
def teams_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).get_team(name), as_json)


@teams_app.command("update")
def teams_update(
    name: str,
    description: Annotated[str, typer.Option(help="1-200 characters.")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a team's description."""
    emit(api_client(url).update_team(name, description=description), as_json)


@teams_app.command("delete")
def teams_delete(name: str, url: UrlOption = None) -> None:
    api_client(url).delete_team(name)
    out.print(f"deleted team {name}")


@teams_app.command("add-member")
def teams_add_member(team: str, email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).add_team_member(team, email), as_json)


@teams_app.command("remove-member")
def teams_remove_member(team: str, email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).remove_team_member(team, email), as_json)


def _emails(values: Iterable[str]) -> list[str]:
    return [e.strip() for v in values for e in v.split(",") if e.strip()]


@workers_app.command("invite")
def workers_invite(
    emails: Annotated[list[str], typer.Argument(help="E-mail addresses, space- or comma-separated (up to 50).")],
    team: Annotated[list[str] | None, typer.Option("--team", help="Team to join (repeatable).")] = None,
    name: Annotated[str, typer.Option(help="Display name (one address only).")] = "",
    password_stdin: Annotated[
        bool, typer.Option(help="Read a password from standard input instead of inviting.")
    ] = False,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add workers to teams; prints each one's invitation link to hand over. A worker who
    exists already joins the teams (as in the admin console), with no new invitation."""
    addresses = _emails(emails)
    if not 1 <= len(addresses) <= 50:
        raise ValidationError("Give 1 to 50 e-mail addresses.")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    client = api_client(url)

    def invite(email: str) -> dict[str, Any]:
        try:
            made = client.create_worker(email, name=name, teams=team or [], password=password)
        except ResourceInUseError:  # an existing worker: join the teams
            before = set(client.get_worker(email).teams)
            for each in team or []:
                client.add_team_member(each, email)
            worker = client.get_worker(email)
            joined = set(team or []) - before
            return {
                "email": worker.email,
                "status": worker.status,
                "outcome": "added" if joined else "member" if team else "exists",
                "invitation_url": None,
            }
        return {
            "email": made.worker.email,
            "status": made.worker.status,
            "outcome": "invited" if made.invitation_url else "created",
            "invitation_url": made.invitation_url,
        }

    rows = with_progress(addresses, "inviting", invite)
    emit(rows, as_json, ["email", "status", "outcome", "invitation_url"])


@workers_app.command("list")
def workers_list(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    emit(
        api_client(url).list_workers(team=team),
        as_json,
        ["email", "name", "status", "teams", "last_seen_at"],
    )


@workers_app.command("describe")
def workers_describe(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).get_worker(email), as_json)


@workers_app.command("disable")
def workers_disable(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Disable a worker; the tasks they hold go back to the pool."""
    emit(api_client(url).set_worker_status(email, "disabled"), as_json)


@workers_app.command("enable")
def workers_enable(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).set_worker_status(email, "active"), as_json)


@workers_app.command("reinvite")
def workers_reinvite(email: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    """Issue a new invitation link (the old one stops working)."""
    emit(api_client(url).reinvite_worker(email), as_json)


@workers_app.command("remove")
def workers_remove(email: str, url: UrlOption = None) -> None:
    """Disable a worker and remove them from every team (their answers are kept)."""
    api_client(url).remove_worker(email)
    out.print(f"removed {email}")


# -- templates and flows -------------------------------------------------------------


@templates_app.command("create")
def templates_create(
    name: str,
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="The Liquid/HTML template.")],
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    ui = api_client(url).create_task_ui(name, template=file.read_text())
    emit(
        {"name": ui.name, "arn": ui.arn, "content_sha256": ui.content_sha256} if not as_json else ui,
        as_json,
    )


@templates_app.command("list")
def templates_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).list_task_uis(), as_json, ["name", "arn", "created_at"])


@templates_app.command("show")
def templates_show(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    ui = api_client(url).get_task_ui(name)
    if as_json:
        emit(ui, True)
    else:
        sys.stdout.write(ui.template if ui.template.endswith("\n") else ui.template + "\n")


@templates_app.command("delete")
def templates_delete(name: str, url: UrlOption = None) -> None:
    api_client(url).delete_task_ui(name)
    out.print(f"deleted template {name}")


class Fallback(StrEnum):
    """What answers a loop nobody answered in time (docs/deadlines.md)."""

    MODEL = "model"
    FAIL = "fail"

    @property
    def wire(self) -> Literal["model", "fail"]:
        return "model" if self is Fallback.MODEL else "fail"


@flows_app.command("create")
def flows_create(
    name: str,
    team: Annotated[str, typer.Option(help="The work team that answers.")],
    template: Annotated[str, typer.Option(help="The task UI's name.")],
    title: Annotated[str, typer.Option(help="Task title shown to workers.")],
    description: Annotated[str, typer.Option(help="Task description shown to workers.")],
    output: Annotated[str, typer.Option(help="Output location, s3://bucket/prefix.")],
    task_count: Annotated[int, typer.Option(help="Distinct workers per loop (1-3).")] = 1,
    keyword: Annotated[list[str] | None, typer.Option("--keyword", help="Keyword (repeatable, up to 5).")] = None,
    availability: Annotated[int, typer.Option(help="Seconds a task may wait for a worker.")] = 864_000,
    time_limit: Annotated[int, typer.Option(help="Seconds a worker has for a task.")] = 3_600,
    role_arn: Annotated[str | None, typer.Option(help="IAM role ARN (kept for A2I parity).")] = None,
    consolidation: Annotated[
        bool | None, typer.Option(help="Write a consolidated answer (default: on when task count > 1).")
    ] = None,
    consolidation_quorum: Annotated[
        int | None, typer.Option(help="Workers who must agree to keep a box or label (default: a majority).")
    ] = None,
    frame_origin: Annotated[
        list[str] | None,
        typer.Option("--frame-origin", help="https://host[:port] its task frames may load from (repeatable)."),
    ] = None,
    priority: Annotated[int, typer.Option(help="Default priority of its loops, 0-100.")] = 50,
    deadline: Annotated[int | None, typer.Option(help="Seconds a loop has to be answered in.")] = None,
    fallback: Annotated[Fallback, typer.Option(help="After the deadline with no answer.")] = Fallback.FAIL,
    escalation_team: Annotated[
        str | None, typer.Option(help="A second team that may answer too once the deadline passed.")
    ] = None,
    escalation_time: Annotated[int | None, typer.Option(help="Seconds the escalation team has.")] = None,
    adaptive: Annotated[
        bool, typer.Option(help="One worker first, more (up to task count) only when answers disagree.")
    ] = False,
    model_agreement: Annotated[
        float | None, typer.Option(help="Adaptive: agreement with the model (0-1) that needs no second worker.")
    ] = None,
    worker_agreement: Annotated[
        float | None, typer.Option(help="Adaptive: agreement among workers (0-1) that needs no more.")
    ] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a flow definition."""
    flow = api_client(url).create_flow(
        name,
        team=team,
        task_ui=template,
        title=title,
        description=description,
        output_path=output,
        task_count=task_count,
        keywords=keyword or [],
        availability_lifetime_seconds=availability,
        time_limit_seconds=time_limit,
        role_arn=role_arn,
        consolidation=consolidation,
        consolidation_quorum=consolidation_quorum,
        frame_origins=frame_origin or [],
        default_priority=priority,
        deadline_seconds=deadline,
        fallback=fallback.wire,
        escalation_team=escalation_team,
        escalation_seconds=escalation_time,
        adaptive=adaptive,
        adaptive_model_agreement=model_agreement,
        adaptive_worker_agreement=worker_agreement,
    )
    emit(flow, as_json)


@flows_app.command("update")
def flows_update(
    name: str,
    title: Annotated[str | None, typer.Option(help="Task title shown to workers.")] = None,
    description: Annotated[str | None, typer.Option(help="Task description shown to workers.")] = None,
    task_count: Annotated[int | None, typer.Option(help="Distinct workers per loop (1-3), for new loops.")] = None,
    keyword: Annotated[list[str] | None, typer.Option("--keyword", help="Keyword (repeatable); replaces all.")] = None,
    availability: Annotated[int | None, typer.Option(help="Seconds a task may wait, for new loops.")] = None,
    time_limit: Annotated[int | None, typer.Option(help="Seconds a worker has, for tasks taken from now.")] = None,
    consolidation: Annotated[
        bool | None, typer.Option(help="Write a consolidated answer, for outputs from now.")
    ] = None,
    consolidation_quorum: Annotated[int | None, typer.Option(help="Workers who must agree (1 to task count).")] = None,
    frame_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--frame-origin", help="https://host[:port] its task frames may load from (repeatable); replaces all."
        ),
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Default priority (0-100), for new loops.")] = None,
    deadline: Annotated[int | None, typer.Option(help="Seconds to answer in, for new loops; 0: none.")] = None,
    fallback: Annotated[Fallback | None, typer.Option(help="After the deadline with no answer.")] = None,
    escalation_team: Annotated[
        str | None, typer.Option(help="A second team that may answer too once the deadline passed; '' removes it.")
    ] = None,
    escalation_time: Annotated[int | None, typer.Option(help="Seconds the escalation team has.")] = None,
    adaptive: Annotated[bool | None, typer.Option(help="Adaptive reviewers, for new loops.")] = None,
    model_agreement: Annotated[float | None, typer.Option(help="Adaptive: agreement with the model (0-1).")] = None,
    worker_agreement: Annotated[float | None, typer.Option(help="Adaptive: agreement among workers (0-1).")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a flow definition (team, template and output location stay)."""
    flow = api_client(url).update_flow(
        name,
        title=title,
        description=description,
        keywords=keyword,
        task_count=task_count,
        availability_lifetime_seconds=availability,
        time_limit_seconds=time_limit,
        consolidation=_kept(consolidation),
        consolidation_quorum=_kept(consolidation_quorum),
        frame_origins=frame_origin,
        default_priority=priority,
        deadline_seconds=deadline,
        fallback=fallback.wire if fallback is not None else None,
        escalation_team=escalation_team,
        escalation_seconds=escalation_time,
        adaptive=adaptive,
        adaptive_model_agreement=_kept(model_agreement),
        adaptive_worker_agreement=_kept(worker_agreement),
    )
    emit(flow, as_json)


def _kept(value: T | None) -> T | Unset:
    """An option not given stays as it is: left out of the update (null would put a
    consolidation setting or an adaptive limit back to its default)."""
    return UNSET if value is None else value


@flows_app.command("list")
def flows_list(url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).list_flows(), as_json, ["name", "team", "task_ui", "task_count", "output_path"])


@flows_app.command("describe")
def flows_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).get_flow(name), as_json)


@flows_app.command("delete")
def flows_delete(name: str, url: UrlOption = None) -> None:
    api_client(url).delete_flow(name)
    out.print(f"deleted flow {name}")


# -- loops ---------------------------------------------------------------------------


@loops_app.command("start")
def loops_start(
    name: Annotated[str, typer.Argument(help="Loop name (1-63 letters, digits, hyphens).")],
    flow: Annotated[str, typer.Option(help="Flow definition.")],
    input: Annotated[str, typer.Option("--input", help="Input JSON object, @file, or - for stdin.")],
    priority: Annotated[int | None, typer.Option(help="0-100; default: the flow's.")] = None,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Start one human loop."""
    emit(api_client(url).start_loop(name, flow=flow, input=read_arg(input), priority=priority), as_json)


@loops_app.command("start-batch")
def loops_start_batch(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="JSON Lines: one input object per line."),
    ],
    flow: Annotated[str, typer.Option(help="Flow definition.")],
    prefix: Annotated[str, typer.Option(help="Name prefix; a line may give its own 'loopName'.")] = "loop",
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Start one loop per line of a JSON Lines file (with a progress bar).

    A line without 'loopName' is named after a hash of its content, so running the same
    file again starts nothing twice."""
    inputs = [
        json_object(line, f"line {i + 1}") for i, line in enumerate(file.read_text().splitlines()) if line.strip()
    ]
    client = api_client(url)

    def start(item: dict[str, Any]) -> Any:
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"))
        name = item.pop("loopName", None) or f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()[:24]}"
        return client.start_loop(name, flow=flow, input=item)

    started = with_progress(inputs, "starting loops", start)
    if as_json:
        emit(started, True)
    else:
        out.print(f"started {sum(1 for s in started if s.created)} loops ({len(started)} lines)")


@loops_app.command("describe")
def loops_describe(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).describe_loop(name), as_json)


@loops_app.command("list")
def loops_list(
    flow: Annotated[str | None, typer.Option(help="Only this flow definition.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only this status: InProgress, Completed, Failed, Stopping or Stopped.")
    ] = None,
    created_after: Annotated[str | None, typer.Option(help="ISO time, inclusive.")] = None,
    created_before: Annotated[str | None, typer.Option(help="ISO time, inclusive.")] = None,
    sort: Annotated[str, typer.Option(help="Ascending or Descending.")] = "Descending",
    limit: Annotated[int, typer.Option(help="At most this many loops (pages are fetched as needed).")] = 100,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    loops = []
    for loop in api_client(url).iter_loops(
        flow=flow,
        status=status,
        created_after=created_after,
        created_before=created_before,
        sort_order=sort,
        max_results=min(100, max(1, limit)),
    ):
        loops.append(loop)
        if len(loops) >= limit:
            break
    emit(loops, as_json, ["name", "flow", "status", "created_at", "output_uri"])


@loops_app.command("stop")
def loops_stop(name: str, url: UrlOption = None, as_json: JsonFlag = False) -> None:
    emit(api_client(url).stop_loop(name), as_json)


@loops_app.command("delete")
def loops_delete(name: str, url: UrlOption = None) -> None:
    api_client(url).delete_loop(name)
    out.print(f"deleted loop {name}")


@loops_app.command("wait")
def loops_wait(
    name: str,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600,
    interval: Annotated[float, typer.Option(help="Seconds between checks.")] = 1.0,
    url: UrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Wait until a loop is Completed, Failed or Stopped. Exit code 2 on timeout."""
    try:
        loop = api_client(url).wait_for_loop(name, timeout=timeout, poll_interval=interval)
    except TimeoutError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from exc
    emit(loop, as_json)
