"""Control-plane operations for human review: work teams, human task UIs (with
RenderUiTemplate as a preview) and flow definitions, mapped onto loopin's teams, task UIs
and flows. A missing resource answers ``ResourceNotFound``.

Work-team members are loopin workers, managed with loopin's CLI or native API; the
``MemberDefinitions`` of CreateWorkteam are checked for shape and not stored, and a team
describes its members as one OIDC group named like the team.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from loopin import activation, flows, task_templates, workforce
from loopin.arns import name_from_arn
from loopin.errors import ValidationError
from loopin.loops import parse_input
from loopin.models import FlowDefinition, TaskUi, Workteam
from loopin.rendering import RenderError, render_task
from loopin.services import Services
from loopin.web.aws.control_common import Operation, epoch, paginate, with_token
from loopin.web.aws.fields import Fields

NOT_FOUND = "ResourceNotFound"
UNKNOWN_ELEMENT = "UnknownCrowdElement"
log = logging.getLogger("loopin.aws")
MAX_RENDER_INPUT = 128_000


def review_operations(ctx: Services) -> dict[str, Operation]:
    ops = _Review(ctx)
    return {
        name: Operation(getattr(ops, name), NOT_FOUND)
        for name in (
            "CreateWorkteam",
            "DescribeWorkteam",
            "ListWorkteams",
            "UpdateWorkteam",
            "DeleteWorkteam",
            "CreateHumanTaskUi",
            "DescribeHumanTaskUi",
            "ListHumanTaskUis",
            "DeleteHumanTaskUi",
            "RenderUiTemplate",
            "CreateFlowDefinition",
            "DescribeFlowDefinition",
            "ListFlowDefinitions",
            "DeleteFlowDefinition",
        )
    }


class _Review:
    def __init__(self, ctx: Services) -> None:
        self.ctx = ctx

    def _arn(self, kind: str, name: str) -> str:
        return self.ctx.settings.arn(kind, name)

    def _now(self) -> int:
        return self.ctx.clock.now_ms()

    # -- work teams ------------------------------------------------------------------------

    def _team(self, team: Workteam) -> dict[str, Any]:
        public = self.ctx.settings.resolved_public_url
        return {
            "WorkteamName": team.name,
            "WorkteamArn": self._arn("workteam", f"private-crowd/{team.name}"),
            "WorkforceArn": self._arn("workforce", "default"),
            "MemberDefinitions": [{"OidcMemberDefinition": {"Groups": [team.name]}}],
            "Description": team.description,
            "SubDomain": public.split("://", 1)[-1],  # the worker console's host, as on AWS
            "CreateDate": epoch(team.created_at),
            "LastUpdatedDate": epoch(team.updated_at),
        }

    def CreateWorkteam(self, body: Fields) -> dict[str, Any]:
        name = body.text("WorkteamName", max_len=63)
        description = body.text("Description", max_len=200)
        body.objects("MemberDefinitions", min_items=1, max_items=10)
        team = self.ctx.write(
            lambda s: workforce.create_team(s, name=name, description=description, now_ms=self._now())
        )
        return {"WorkteamArn": self._team(team)["WorkteamArn"]}

    def DescribeWorkteam(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            return {"Workteam": self._team(workforce.get_team(s, body.text("WorkteamName", max_len=63)))}

    def ListWorkteams(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            teams = workforce.list_teams(s)
        page, token = paginate(
            body,
            teams,
            name=lambda t: t.name,
            created_ms=lambda t: t.created_at,
            sort_keys={"Name": lambda t: t.name, "CreateDate": lambda t: t.created_at},
            default_sort="CreateDate",
        )
        return with_token({"Workteams": [self._team(t) for t in page]}, token)

    def UpdateWorkteam(self, body: Fields) -> dict[str, Any]:
        name = body.text("WorkteamName", max_len=63)
        description = body.opt_text("Description", max_len=200)
        if body.opt_list("MemberDefinitions", max_items=10) is not None:
            body.objects("MemberDefinitions", min_items=1, max_items=10)

        def run(s: Session) -> Workteam:
            team = workforce.get_team(s, name)
            if description is None:
                return team
            return workforce.update_team(s, name, description=description, now_ms=self._now())

        return {"Workteam": self._team(self.ctx.write(run))}

    def DeleteWorkteam(self, body: Fields) -> dict[str, Any]:
        name = body.text("WorkteamName", max_len=63)
        self.ctx.write(lambda s: workforce.delete_team(s, name))
        return {"Success": True}

    # -- human task UIs --------------------------------------------------------------------

    def CreateHumanTaskUi(self, body: Fields) -> dict[str, Any]:
        name = body.text("HumanTaskUiName", max_len=63)
        content = body.obj("UiTemplate").text("Content", max_len=task_templates.MAX_TEMPLATE_CHARS)
        self.ctx.write(lambda s: task_templates.create_task_ui(s, name=name, content=content, now_ms=self._now()))
        # The response's shape is AWS's ({HumanTaskUiArn}): the warnings go to the log, and
        # RenderUiTemplate and loopin's own API return them.
        for warning in task_templates.template_warnings(content):
            log.warning("human task UI %s: %s", name, warning)
        return {"HumanTaskUiArn": self._arn("human-task-ui", name)}

    def DescribeHumanTaskUi(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            ui = task_templates.get_task_ui(s, body.text("HumanTaskUiName", max_len=63))
        return {
            "HumanTaskUiArn": self._arn("human-task-ui", ui.name),
            "HumanTaskUiName": ui.name,
            "HumanTaskUiStatus": "Active",
            "CreationTime": epoch(ui.created_at),
            # Like AWS, the text itself is not returned: a URL to it (loopin's API, with an access key).
            "UiTemplate": {
                "Url": f"{self.ctx.settings.resolved_public_url}/api/v1/task-uis/{ui.name}",
                "ContentSha256": ui.content_sha256,
            },
        }

    def ListHumanTaskUis(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            uis = task_templates.list_task_uis(s)
        page, token = paginate(
            body,
            uis,
            name=lambda u: u.name,
            created_ms=lambda u: u.created_at,
            sort_keys={"CreationTime": lambda u: u.created_at},
            default_sort="CreationTime",
        )
        summaries = [
            {
                "HumanTaskUiName": u.name,
                "HumanTaskUiArn": self._arn("human-task-ui", u.name),
                "CreationTime": epoch(u.created_at),
            }
            for u in page
        ]
        return with_token({"HumanTaskUiSummaries": summaries}, token)

    def DeleteHumanTaskUi(self, body: Fields) -> dict[str, Any]:
        name = body.text("HumanTaskUiName", max_len=63)
        self.ctx.write(lambda s: task_templates.delete_task_ui(s, name))
        return {}

    def RenderUiTemplate(self, body: Fields) -> dict[str, Any]:
        """A preview of the page a worker would see for this input."""
        body.text("RoleArn", max_len=2048)
        task_input = parse_input(body.obj("Task").text("Input", max_len=MAX_RENDER_INPUT))
        template = body.opt_obj("UiTemplate")
        ui_arn = body.opt_text("HumanTaskUiArn")
        if (template is None) == (ui_arn is None):
            raise ValidationError("Give exactly one of UiTemplate and HumanTaskUiArn.")
        if template is not None:
            content = template.text("Content", max_len=task_templates.MAX_TEMPLATE_CHARS)
        else:
            with self.ctx.db.read() as s:
                content = task_templates.get_task_ui(s, name_from_arn(str(ui_arn), "human-task-ui")).content
        try:
            rendered = render_task(content, task_input, grant_read_access=self._grant)
        except RenderError as exc:
            return {"RenderedContent": "", "Errors": [{"Code": "RenderingError", "Message": exc.message}]}
        # Unknown crowd-* elements render (as nothing), but their answers would be lost: they
        # are reported in AWS's own Errors list, with the page still rendered.
        warnings = [{"Code": UNKNOWN_ELEMENT, "Message": w} for w in task_templates.template_warnings(content)]
        return {"RenderedContent": rendered, "Errors": warnings}

    def _grant(self, uri: str) -> str:
        ttl = self.ctx.settings.signed_url_ttl_seconds
        return self.ctx.store.signed_url(uri, ttl_seconds=ttl, now_ms=self._now())

    # -- flow definitions ------------------------------------------------------------------

    def CreateFlowDefinition(self, body: Fields) -> dict[str, Any]:
        name = body.text("FlowDefinitionName", max_len=63)
        source = body.opt_obj("HumanLoopRequestSource")
        activation_config = body.opt_obj("HumanLoopActivationConfig")
        conditions = (
            activation_config.obj("HumanLoopActivationConditionsConfig").text(
                "HumanLoopActivationConditions", max_len=activation.MAX_CONDITIONS_CHARS
            )
            if activation_config is not None
            else None
        )
        config = body.obj("HumanLoopConfig")
        team = name_from_arn(config.text("WorkteamArn", max_len=256), "workteam")
        task_ui = name_from_arn(config.text("HumanTaskUiArn"), "human-task-ui")
        options: dict[str, Any] = {
            "title": config.text("TaskTitle", max_len=128),
            "description": config.text("TaskDescription", max_len=255),
            "task_count": config.opt_int("TaskCount", low=1, high=3) or 1,
            "keywords": config.opt_list("TaskKeywords", max_items=5) or [],
            "output_path": body.obj("OutputConfig").text("S3OutputPath"),
            "role_arn": body.text("RoleArn", max_len=2048),
            "availability_lifetime_s": config.opt_int("TaskAvailabilityLifetimeInSeconds", low=1, high=2**31),
            "time_limit_s": config.opt_int("TaskTimeLimitInSeconds", low=1, high=2**31),
            "request_source": source.text("AwsManagedHumanLoopRequestSource", max_len=64) if source else None,
            "activation_conditions": conditions,
        }
        options = {k: v for k, v in options.items() if v is not None}  # unset lifetimes: loopin's defaults

        def run(s: Session) -> None:
            flows.create_flow(s, name=name, team=team, task_ui=task_ui, now_ms=self._now(), **options)

        self.ctx.write(run)
        return {"FlowDefinitionArn": self._arn("flow-definition", name)}

    def DescribeFlowDefinition(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            flow = flows.get_flow(s, body.text("FlowDefinitionName", max_len=63))
            team = s.get_one(Workteam, flow.team_id).name
            task_ui = s.get_one(TaskUi, flow.task_ui_id).name
        config: dict[str, Any] = {
            "WorkteamArn": self._arn("workteam", f"private-crowd/{team}"),
            "HumanTaskUiArn": self._arn("human-task-ui", task_ui),
            "TaskTitle": flow.title,
            "TaskDescription": flow.description,
            "TaskCount": flow.task_count,
            "TaskAvailabilityLifetimeInSeconds": flow.availability_lifetime_s,
            "TaskTimeLimitInSeconds": flow.time_limit_s,
        }
        if keywords := json.loads(flow.keywords):
            config["TaskKeywords"] = keywords
        answer = self._flow_summary(flow) | {
            "HumanLoopConfig": config,
            "OutputConfig": {"S3OutputPath": flow.output_path},
        }
        if flow.role_arn:
            answer["RoleArn"] = flow.role_arn
        if flow.request_source is not None:
            answer["HumanLoopRequestSource"] = {"AwsManagedHumanLoopRequestSource": flow.request_source}
        if flow.activation_conditions is not None:
            conditions = {"HumanLoopActivationConditions": flow.activation_conditions}
            answer["HumanLoopActivationConfig"] = {"HumanLoopActivationConditionsConfig": conditions}
        return answer

    def ListFlowDefinitions(self, body: Fields) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            rows = flows.list_flows(s)
        page, token = paginate(
            body,
            rows,
            name=lambda f: f.name,
            created_ms=lambda f: f.created_at,
            sort_keys={"CreationTime": lambda f: f.created_at},
            default_sort="CreationTime",
        )
        return with_token({"FlowDefinitionSummaries": [self._flow_summary(f) for f in page]}, token)

    def DeleteFlowDefinition(self, body: Fields) -> dict[str, Any]:
        name = body.text("FlowDefinitionName", max_len=63)
        self.ctx.write(lambda s: flows.delete_flow(s, name))
        return {}

    def _flow_summary(self, flow: FlowDefinition) -> dict[str, Any]:
        return {
            "FlowDefinitionName": flow.name,
            "FlowDefinitionArn": self._arn("flow-definition", flow.name),
            "FlowDefinitionStatus": "Active",  # loopin's flows are usable as soon as they exist
            "CreationTime": epoch(flow.created_at),
        }
