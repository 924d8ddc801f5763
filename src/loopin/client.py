"""The Python SDK: ``loopin.Client`` for admin work (access key), ``loopin.WorkerClient``
for a reviewer (sign-in token). Imports nothing of the server.

    client = Client("http://127.0.0.1:8321", access_key_id="LKIA...", secret_access_key="...")
    client.start_loop("loop-1", flow="review-flow", input={"taskObject": "s3://bucket/a.jpg"})
    client.wait_for_loop("loop-1")

Errors come back as the ``loopin.errors`` exceptions, with the server's stable ``code``.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from loopin import schemas
from loopin.errors import LoopinError, ValidationError, error_from_code

M = TypeVar("M", bound=BaseModel)


class Unset(enum.Enum):
    """The type of ``UNSET``: an argument left out, told apart from None (sent as null)."""

    UNSET = "UNSET"


UNSET = Unset.UNSET
DEFAULT_URL = "http://127.0.0.1:8321"
FINAL_STATUSES = ("Completed", "Failed", "Stopped")


class _Http:
    def __init__(
        self,
        url: str,
        *,
        auth: httpx.Auth | None,
        headers: dict[str, str],
        http_client: httpx.Client | None,
        timeout: float,
    ) -> None:
        self._prefix = "/api/v1" if http_client is not None else url.rstrip("/") + "/api/v1"
        self._client = http_client or httpx.Client(timeout=timeout)
        self._auth = auth
        self._headers = headers

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._client.request(
                method,
                self._prefix + path,
                json=json_body,
                content=content,
                params={k: v for k, v in (params or {}).items() if v is not None},
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                headers={**self._headers, **(headers or {})},
            )
        except httpx.TransportError as exc:
            raise LoopinError(f"Cannot reach the loopin server: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def stream_events(
        self, path: str, *, params: dict[str, Any], headers: dict[str, str], deadline: float | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(id, data)`` of each server-sent event, until ``deadline`` (monotonic time)."""
        read_timeout = 30.0 if deadline is None else max(0.1, min(30.0, deadline - time.monotonic()))
        with self._client.stream(
            "GET",
            self._prefix + path,
            params={k: v for k, v in params.items() if v is not None},
            headers={**self._headers, **headers, "Accept": "text/event-stream"},
            auth=self._auth or httpx.USE_CLIENT_DEFAULT,
            timeout=httpx.Timeout(10.0, read=read_timeout),
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            event_id, data = "", ""
            for line in response.iter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    yield event_id, json.loads(data)
                    data = ""
                if deadline is not None and time.monotonic() >= deadline:
                    return

    def download(self, path: str, dest: str | os.PathLike[str]) -> int:
        """Stream a GET's body into ``dest`` (via a temporary name); the bytes written."""
        tmp = f"{os.fspath(dest)}.part"
        written = 0
        try:
            with self._client.stream(
                "GET", self._prefix + path, auth=self._auth or httpx.USE_CLIENT_DEFAULT, headers=self._headers
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                with open(tmp, "wb") as fh:
                    for chunk in response.iter_bytes(1 << 20):
                        fh.write(chunk)
                        written += len(chunk)
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise LoopinError(f"Cannot reach the loopin server: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return written

    def model(self, cls: type[M], method: str, path: str, **kw: Any) -> M:
        return cls.model_validate(self.call(method, path, **kw).json())

    def models(self, cls: type[M], method: str, path: str, **kw: Any) -> list[M]:
        return [cls.model_validate(item) for item in self.call(method, path, **kw).json()]

    def close(self) -> None:
        self._client.close()


def _error(response: httpx.Response) -> LoopinError:
    try:
        body = response.json()["error"]
        return error_from_code(body["code"], body["message"], body.get("details"))
    except (ValueError, KeyError, TypeError):
        err = LoopinError(f"HTTP {response.status_code}: {response.text[:500]}")
        return err


def _worker_session(
    url: str, path: str, body: dict[str, str], http_client: httpx.Client | None
) -> schemas.WorkerSession:
    """Sign in; a connection opened only for this is closed again (the caller's client is kept)."""
    http = _Http(url, auth=None, headers={}, http_client=http_client, timeout=30.0)
    try:
        return http.model(schemas.WorkerSession, "POST", path, json_body=body)
    finally:
        if http_client is None:
            http.close()


def _q(name: str) -> str:
    return quote(name, safe="")


class Client:
    """Admin client. Credentials default to ``LOOPIN_URL``, ``LOOPIN_ACCESS_KEY_ID`` and
    ``LOOPIN_SECRET_ACCESS_KEY``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        http_client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        key_id = access_key_id or os.environ.get("LOOPIN_ACCESS_KEY_ID", "")
        secret = secret_access_key or os.environ.get("LOOPIN_SECRET_ACCESS_KEY", "")
        self.url = url or os.environ.get("LOOPIN_URL", DEFAULT_URL)
        self._http = _Http(
            self.url,
            auth=httpx.BasicAuth(key_id, secret) if key_id else None,
            headers={},
            http_client=http_client,
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- teams -------------------------------------------------------------------------
    def create_team(self, name: str, *, description: str) -> schemas.Team:
        body = schemas.TeamCreate(name=name, description=description)
        return self._http.model(schemas.Team, "POST", "/teams", json_body=body.model_dump())

    def list_teams(self) -> list[schemas.Team]:
        return self._http.models(schemas.Team, "GET", "/teams")

    def get_team(self, name: str) -> schemas.Team:
        return self._http.model(schemas.Team, "GET", f"/teams/{_q(name)}")

    def update_team(self, name: str, *, description: str) -> schemas.Team:
        return self._http.model(schemas.Team, "PATCH", f"/teams/{_q(name)}", json_body={"description": description})

    def delete_team(self, name: str) -> None:
        self._http.call("DELETE", f"/teams/{_q(name)}")

    def add_team_member(self, team: str, email: str) -> schemas.Team:
        return self._http.model(schemas.Team, "POST", f"/teams/{_q(team)}/members", json_body={"email": email})

    def remove_team_member(self, team: str, email: str) -> schemas.Team:
        return self._http.model(schemas.Team, "DELETE", f"/teams/{_q(team)}/members/{_q(email)}")

    # -- workers -----------------------------------------------------------------------
    def create_worker(
        self, email: str, *, name: str = "", teams: Sequence[str] = (), password: str | None = None
    ) -> schemas.Invitation:
        body = schemas.WorkerCreate(email=email, name=name, teams=list(teams), password=password)
        return self._http.model(schemas.Invitation, "POST", "/workers", json_body=body.model_dump())

    def list_workers(self, *, team: str | None = None) -> list[schemas.Worker]:
        return self._http.models(schemas.Worker, "GET", "/workers", params={"team": team})

    def get_worker(self, email: str) -> schemas.Worker:
        return self._http.model(schemas.Worker, "GET", f"/workers/{_q(email)}")

    def set_worker_status(self, email: str, status: str) -> schemas.Worker:
        return self._http.model(schemas.Worker, "PATCH", f"/workers/{_q(email)}", json_body={"status": status})

    def reinvite_worker(self, email: str) -> schemas.Invitation:
        return self._http.model(schemas.Invitation, "POST", f"/workers/{_q(email)}/invitation")

    def remove_worker(self, email: str) -> None:
        self._http.call("DELETE", f"/workers/{_q(email)}")

    # -- task UIs and flows ------------------------------------------------------------
    def create_task_ui(self, name: str, *, template: str) -> schemas.TaskUi:
        return self._http.model(schemas.TaskUi, "POST", "/task-uis", json_body={"name": name, "template": template})

    def list_task_uis(self) -> list[schemas.TaskUi]:
        return self._http.models(schemas.TaskUi, "GET", "/task-uis")

    def get_task_ui(self, name: str) -> schemas.TaskUi:
        return self._http.model(schemas.TaskUi, "GET", f"/task-uis/{_q(name)}")

    def delete_task_ui(self, name: str) -> None:
        self._http.call("DELETE", f"/task-uis/{_q(name)}")

    def create_flow(
        self,
        name: str,
        *,
        team: str,
        task_ui: str,
        title: str,
        description: str,
        output_path: str,
        task_count: int = 1,
        keywords: Sequence[str] = (),
        availability_lifetime_seconds: int = 864_000,
        time_limit_seconds: int = 3_600,
        role_arn: str | None = None,
        consolidation: bool | None = None,
        consolidation_quorum: int | None = None,
        frame_origins: Sequence[str] = (),
        default_priority: int = 50,
        deadline_seconds: int | None = None,
        fallback: Literal["model", "fail"] = "fail",
        escalation_team: str | None = None,
        escalation_seconds: int | None = None,
        adaptive: bool = False,
        adaptive_model_agreement: float | None = None,
        adaptive_worker_agreement: float | None = None,
    ) -> schemas.Flow:
        """Create a flow. ``deadline_seconds``: the time a loop has to be answered in, after
        which ``fallback`` finishes it, or first ``escalation_team`` may answer too for
        ``escalation_seconds`` (docs/deadlines.md); ``default_priority``: 0-100.
        ``adaptive``: one worker first, more (up to ``task_count``) only while the answers
        disagree with the model or each other beyond the limits (docs/consolidation.md)."""
        body = schemas.FlowCreate(
            name=name,
            team=team,
            task_ui=task_ui,
            title=title,
            description=description,
            output_path=output_path,
            task_count=task_count,
            keywords=list(keywords),
            availability_lifetime_seconds=availability_lifetime_seconds,
            time_limit_seconds=time_limit_seconds,
            role_arn=role_arn,
            consolidation=consolidation,
            consolidation_quorum=consolidation_quorum,
            frame_origins=list(frame_origins),
            default_priority=default_priority,
            deadline_seconds=deadline_seconds,
            fallback=fallback,
            escalation_team=escalation_team,
            escalation_seconds=escalation_seconds,
            adaptive=adaptive,
            adaptive_model_agreement=adaptive_model_agreement,
            adaptive_worker_agreement=adaptive_worker_agreement,
        )
        return self._http.model(schemas.Flow, "POST", "/flows", json_body=body.model_dump())

    def update_flow(
        self,
        name: str,
        *,
        title: str | None | Unset = UNSET,
        description: str | None | Unset = UNSET,
        keywords: Sequence[str] | None | Unset = UNSET,
        task_count: int | None | Unset = UNSET,
        availability_lifetime_seconds: int | None | Unset = UNSET,
        time_limit_seconds: int | None | Unset = UNSET,
        consolidation: bool | None | Unset = UNSET,
        consolidation_quorum: int | None | Unset = UNSET,
        frame_origins: Sequence[str] | None | Unset = UNSET,
        default_priority: int | None | Unset = UNSET,
        deadline_seconds: int | None | Unset = UNSET,
        fallback: Literal["model", "fail"] | None | Unset = UNSET,
        escalation_team: str | None | Unset = UNSET,
        escalation_seconds: int | None | Unset = UNSET,
        adaptive: bool | None | Unset = UNSET,
        adaptive_model_agreement: float | None | Unset = UNSET,
        adaptive_worker_agreement: float | None | Unset = UNSET,
    ) -> schemas.Flow:
        """Change a flow's title, description, keywords, task count, time limits,
        consolidation settings, frame origins, default priority, deadline (0 removes it),
        fallback, escalation team ("" removes the escalation) and time, or adaptive
        reviewers and their limits. Only the arguments given are sent; None is sent as null,
        which puts ``consolidation``, ``consolidation_quorum`` and the adaptive limits back
        to their defaults and keeps any other field as it is.
        Team, template and output path cannot change."""
        given: dict[str, Any] = {
            field: value
            for field, value in {
                "title": title,
                "description": description,
                "keywords": keywords,
                "task_count": task_count,
                "availability_lifetime_seconds": availability_lifetime_seconds,
                "time_limit_seconds": time_limit_seconds,
                "consolidation": consolidation,
                "consolidation_quorum": consolidation_quorum,
                "frame_origins": frame_origins,
                "default_priority": default_priority,
                "deadline_seconds": deadline_seconds,
                "fallback": fallback,
                "escalation_team": escalation_team,
                "escalation_seconds": escalation_seconds,
                "adaptive": adaptive,
                "adaptive_model_agreement": adaptive_model_agreement,
                "adaptive_worker_agreement": adaptive_worker_agreement,
            }.items()
            if value is not UNSET
        }
        body = schemas.FlowUpdate(**given)  # sequences become lists
        return self._http.model(
            schemas.Flow, "PATCH", f"/flows/{_q(name)}", json_body=body.model_dump(exclude_unset=True)
        )

    def list_flows(self) -> list[schemas.Flow]:
        return self._http.models(schemas.Flow, "GET", "/flows")

    def get_flow(self, name: str) -> schemas.Flow:
        return self._http.model(schemas.Flow, "GET", f"/flows/{_q(name)}")

    def delete_flow(self, name: str) -> None:
        self._http.call("DELETE", f"/flows/{_q(name)}")

    # -- human loops -------------------------------------------------------------------
    def start_loop(
        self,
        name: str,
        *,
        flow: str,
        input: dict[str, Any] | str,
        content_classifiers: Sequence[str] | None = None,
        priority: int | None = None,
    ) -> schemas.LoopStarted:
        """Start a human loop. ``input`` is a JSON object, or a string holding one;
        ``priority`` 0 (least urgent) to 100, None: the flow's default."""
        body: dict[str, Any] = {"name": name, "flow": flow}
        body["input_content" if isinstance(input, str) else "input"] = input
        if content_classifiers is not None:
            body["content_classifiers"] = list(content_classifiers)
        if priority is not None:
            body["priority"] = priority
        return self._http.model(schemas.LoopStarted, "POST", "/loops", json_body=body)

    def describe_loop(self, name: str) -> schemas.LoopDetail:
        return self._http.model(schemas.LoopDetail, "GET", f"/loops/{_q(name)}")

    def list_loops(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        sort_order: str = "Descending",
        next_token: str | None = None,
        max_results: int = 100,
    ) -> schemas.LoopPage:
        params = {
            "flow": flow,
            "status": status,
            "created_after": created_after,
            "created_before": created_before,
            "sort_order": sort_order,
            "next_token": next_token,
            "max_results": max_results,
        }
        return self._http.model(schemas.LoopPage, "GET", "/loops", params=params)

    def iter_loops(self, **filters: Any) -> Iterator[schemas.Loop]:
        """Every loop matching the filters of ``list_loops``, page after page."""
        token = None
        while True:
            page = self.list_loops(next_token=token, **filters)
            yield from page.loops
            if not page.next_token:
                return
            token = page.next_token

    def stop_loop(self, name: str) -> schemas.Loop:
        return self._http.model(schemas.Loop, "POST", f"/loops/{_q(name)}/stop")

    def delete_loop(self, name: str) -> None:
        self._http.call("DELETE", f"/loops/{_q(name)}")

    def wait_for_loop(self, name: str, *, timeout: float = 3600.0, poll_interval: float = 1.0) -> schemas.LoopDetail:
        """Wait until the loop is Completed, Failed or Stopped; TimeoutError after ``timeout``.

        Listens on the server's event stream, and polls if the stream cannot be used."""
        deadline = time.monotonic() + timeout
        loop = self.describe_loop(name)
        if loop.status in FINAL_STATUSES:
            return loop
        try:
            for event in self.events(loop=name, replay=True, max_seconds=timeout):
                if event["detail"]["humanLoopStatus"] in FINAL_STATUSES:
                    return self.describe_loop(name)
        except (httpx.HTTPError, LoopinError):
            pass  # fall back to polling below
        while True:
            loop = self.describe_loop(name)
            if loop.status in FINAL_STATUSES:
                return loop
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Human loop '{name}' is still {loop.status} after {timeout:g} s.")
            time.sleep(poll_interval)

    def events(
        self,
        *,
        flow: str | None = None,
        loop: str | None = None,
        replay: bool = False,
        max_seconds: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Loop status-change events (A2I's EventBridge shape) as they happen, from the
        server-sent-events stream; reconnects where it left off. Ends after ``max_seconds``."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        last_id: str | None = None
        while deadline is None or time.monotonic() < deadline:
            params = {"flow": flow, "loop": loop, "replay": "true" if replay else None}
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                for event_id, data in self._http.stream_events(
                    "/events", params=params, headers=headers, deadline=deadline
                ):
                    last_id = event_id
                    yield data
            except httpx.ReadTimeout:
                continue  # no event within the read timeout: reconnect

    # -- models and endpoints ----------------------------------------------------------
    def model_catalog(self) -> list[schemas.BuiltinModelInfo]:
        return self._http.models(schemas.BuiltinModelInfo, "GET", "/model-catalog")

    def register_model(
        self,
        name: str,
        *,
        builtin: str | None = None,
        onnx_uri: str | None = None,
        callable: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> schemas.ModelInfo:
        body = schemas.ModelCreate(name=name, builtin=builtin, onnx_uri=onnx_uri, callable=callable, spec=spec)
        return self._http.model(schemas.ModelInfo, "POST", "/models", json_body=body.model_dump())

    def list_models(self) -> list[schemas.ModelInfo]:
        return self._http.models(schemas.ModelInfo, "GET", "/models")

    def delete_model(self, name: str) -> None:
        self._http.call("DELETE", f"/models/{_q(name)}")

    def create_endpoint_config(
        self, name: str, *, variants: Sequence[schemas.VariantSpec]
    ) -> schemas.EndpointConfigInfo:
        body = schemas.EndpointConfigCreate(name=name, variants=list(variants))
        return self._http.model(schemas.EndpointConfigInfo, "POST", "/endpoint-configs", json_body=body.model_dump())

    def list_endpoint_configs(self) -> list[schemas.EndpointConfigInfo]:
        return self._http.models(schemas.EndpointConfigInfo, "GET", "/endpoint-configs")

    def delete_endpoint_config(self, name: str) -> None:
        self._http.call("DELETE", f"/endpoint-configs/{_q(name)}")

    def create_endpoint(
        self, name: str, *, config: str, routing: schemas.RoutingRule | None = None
    ) -> schemas.EndpointInfo:
        body = schemas.EndpointCreate(name=name, config=config, routing=routing)
        return self._http.model(schemas.EndpointInfo, "POST", "/endpoints", json_body=body.model_dump(mode="json"))

    def describe_endpoint(self, name: str) -> schemas.EndpointInfo:
        return self._http.model(schemas.EndpointInfo, "GET", f"/endpoints/{_q(name)}")

    def list_endpoints(self) -> list[schemas.EndpointInfo]:
        return self._http.models(schemas.EndpointInfo, "GET", "/endpoints")

    def update_endpoint(
        self,
        name: str,
        *,
        config: str | None = None,
        routing: schemas.RoutingRule | None = None,
        clear_routing: bool = False,
    ) -> schemas.EndpointInfo:
        body = schemas.EndpointUpdate(config=config, routing=routing, clear_routing=clear_routing)
        return self._http.model(
            schemas.EndpointInfo, "PATCH", f"/endpoints/{_q(name)}", json_body=body.model_dump(mode="json")
        )

    def delete_endpoint(self, name: str) -> None:
        self._http.call("DELETE", f"/endpoints/{_q(name)}")

    def wait_for_endpoint(
        self, name: str, *, timeout: float = 600.0, poll_interval: float = 1.0
    ) -> schemas.EndpointInfo:
        """Poll until the endpoint is InService or Failed; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (endpoint := self.describe_endpoint(name)).status not in ("InService", "Failed"):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Endpoint '{name}' is still {endpoint.status} after {timeout:g} s.")
            time.sleep(poll_interval)
        return endpoint

    def invoke_endpoint(
        self,
        name: str,
        image: bytes,
        *,
        content_type: str = "image/jpeg",
        flow: str | None = None,
        threshold: float | None = None,
        classes: Sequence[str] | None = None,
        sample_percent: float | None = None,
        idempotency_key: str | None = None,
    ) -> schemas.InvocationResult:
        """Detect objects on an image; routing options change the endpoint's rule for this call."""
        params = {
            "flow": flow,
            "threshold": threshold,
            "classes": ",".join(classes) if classes is not None else None,
            "sample_percent": sample_percent,
        }
        headers = {"Content-Type": content_type}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = self._http.call(
            "POST", f"/endpoints/{_q(name)}/invoke", content=image, params=params, headers=headers
        )
        return schemas.InvocationResult.model_validate(response.json())

    def threshold_curve(self, flow: str) -> schemas.ThresholdCurve:
        """How many images would go to people, and how many corrections would be missed,
        at thresholds 0.00-1.00 — replayed from the prediction log and the answers."""
        return self._http.model(schemas.ThresholdCurve, "GET", f"/flows/{_q(flow)}/threshold-curve")

    # -- exports, datasets, model-versus-human metrics -----------------------------------
    def create_export(
        self,
        flow: str,
        *,
        format: str = "coco",
        statuses: Sequence[str] = ("Completed",),
        created_after: str | None = None,
        created_before: str | None = None,
        labels: Sequence[str] | None = None,
        changed_only: bool = False,
        answers: str = "consolidated",
        images: str = "reference",
        target: str = "zip",
        location: str | None = None,
        label_attribute: str = "label",
    ) -> schemas.ExportInfo:
        """Queue an export of the flow's finished loops (see docs/exports.md)."""
        body = {
            "flow": flow,
            "format": format,
            "statuses": list(statuses),
            "created_after": created_after,
            "created_before": created_before,
            "labels": list(labels) if labels is not None else None,
            "changed_only": changed_only,
            "answers": answers,
            "images": images,
            "target": target,
            "location": location,
            "label_attribute": label_attribute,
        }  # checked by the server, which answers a ValidationException
        return self._http.model(schemas.ExportInfo, "POST", "/exports", json_body=body)

    def get_export(self, export_id: str) -> schemas.ExportInfo:
        return self._http.model(schemas.ExportInfo, "GET", f"/exports/{_q(export_id)}")

    def list_exports(self, *, flow: str | None = None, limit: int = 50) -> list[schemas.ExportInfo]:
        return self._http.models(schemas.ExportInfo, "GET", "/exports", params={"flow": flow, "limit": limit})

    def wait_for_export(
        self,
        export_id: str,
        *,
        timeout: float = 3600.0,
        poll_interval: float = 1.0,
        on_progress: Callable[[schemas.ExportInfo], None] | None = None,
    ) -> schemas.ExportInfo:
        """Poll until the export has succeeded or failed (a failed one is returned too)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.get_export(export_id)
            if on_progress is not None:
                on_progress(info)
            if info.state in ("succeeded", "failed"):
                return info
            if time.monotonic() >= deadline:
                raise LoopinError(f"Export {export_id} is still {info.state} after {timeout:g} s.")
            time.sleep(poll_interval)

    def download_export(self, export_id: str, dest: str | os.PathLike[str]) -> int:
        """Save a finished zip export to ``dest``; the bytes written."""
        return self._http.download(f"/exports/{_q(export_id)}/download", dest)

    def create_dataset(self, name: str, *, export_id: str, description: str = "") -> schemas.DatasetInfo:
        body = schemas.DatasetCreate(name=name, export_id=export_id, description=description)
        return self._http.model(schemas.DatasetInfo, "POST", "/datasets", json_body=body.model_dump())

    def list_datasets(self, *, flow: str | None = None) -> list[schemas.DatasetInfo]:
        return self._http.models(schemas.DatasetInfo, "GET", "/datasets", params={"flow": flow})

    def get_dataset(self, name: str) -> schemas.DatasetInfo:
        return self._http.model(schemas.DatasetInfo, "GET", f"/datasets/{_q(name)}")

    def download_dataset(self, name: str, dest: str | os.PathLike[str]) -> int:
        return self._http.download(f"/datasets/{_q(name)}/download", dest)

    def model_metrics(self, *, flow: str | None = None) -> schemas.ModelMetrics:
        """The model's boxes against the people's, per class, flow, endpoint and week."""
        return self._http.model(schemas.ModelMetrics, "GET", "/model-metrics", params={"flow": flow})

    def model_metrics_csv(self, *, flow: str | None = None) -> str:
        return self._http.call("GET", "/model-metrics", params={"flow": flow, "format": "csv"}).text

    # -- gold items and worker quality ---------------------------------------------------
    def gold_settings(self, flow: str) -> schemas.GoldSettings:
        return self._http.model(schemas.GoldSettings, "GET", f"/flows/{_q(flow)}/gold/settings")

    def set_gold_settings(
        self, flow: str, *, rate: float, min_accuracy: float | None = None, min_scored: int = 10
    ) -> schemas.GoldSettings:
        """The share of a worker's tasks that are gold (0-1) and the gold accuracy under
        which a worker is paused from the flow (after ``min_scored`` scored gold tasks)."""
        body = {"gold_rate": rate, "gold_min_accuracy": min_accuracy, "gold_min_scored": min_scored}
        return self._http.model(schemas.GoldSettings, "PUT", f"/flows/{_q(flow)}/gold/settings", json_body=body)

    def add_gold_item(
        self, flow: str, *, input: dict[str, Any] | str, answer: dict[str, Any], note: str = ""
    ) -> schemas.GoldItem:
        """A gold item: the InputContent a loop would get and its known answer (one worker's
        answerContent)."""
        body = {"input": input, "answer": answer, "note": note}
        return self._http.model(schemas.GoldItem, "POST", f"/flows/{_q(flow)}/gold/items", json_body=body)

    def add_gold_items(self, flow: str, items: Sequence[dict[str, Any]]) -> list[schemas.GoldItem]:
        """Many gold items at once, all or none (each ``{"input", "answer", "note"}``)."""
        body = {"items": list(items)}
        return self._http.models(schemas.GoldItem, "POST", f"/flows/{_q(flow)}/gold/items/batch", json_body=body)

    def list_gold_items(self, flow: str) -> list[schemas.GoldItem]:
        return self._http.models(schemas.GoldItem, "GET", f"/flows/{_q(flow)}/gold/items")

    def delete_gold_item(self, flow: str, item_id: int) -> None:
        self._http.call("DELETE", f"/flows/{_q(flow)}/gold/items/{int(item_id)}")

    def worker_quality(self, flow: str) -> schemas.WorkerQuality:
        """Per worker: gold accuracy, agreement with consolidated answers, pace, pauses."""
        return self._http.model(schemas.WorkerQuality, "GET", f"/flows/{_q(flow)}/workers/quality")

    def unpause_worker(self, flow: str, email: str) -> None:
        """Let a worker paused for low gold accuracy work on the flow again."""
        self._http.call("POST", f"/flows/{_q(flow)}/workers/{_q(email)}/unpause")

    # -- webhooks ----------------------------------------------------------------------
    def create_webhook(
        self, name: str, *, url: str, flow: str | None = None, allow_private_network: bool = False
    ) -> schemas.WebhookCreated:
        body = schemas.WebhookCreate(name=name, url=url, flow=flow, allow_private_network=allow_private_network)
        return self._http.model(schemas.WebhookCreated, "POST", "/webhooks", json_body=body.model_dump())

    def list_webhooks(self) -> list[schemas.WebhookInfo]:
        return self._http.models(schemas.WebhookInfo, "GET", "/webhooks")

    def delete_webhook(self, name: str) -> None:
        self._http.call("DELETE", f"/webhooks/{_q(name)}")

    def list_deliveries(
        self, *, status: str | None = None, webhook: str | None = None, limit: int = 100
    ) -> list[schemas.DeliveryInfo]:
        params = {"status": status, "webhook": webhook, "limit": limit}
        return self._http.models(schemas.DeliveryInfo, "GET", "/deliveries", params=params)

    def replay_delivery(self, delivery_id: int) -> schemas.DeliveryInfo:
        return self._http.model(schemas.DeliveryInfo, "POST", f"/deliveries/{delivery_id}/replay")

    # -- batch jobs

    def create_batch_job(
        self,
        *,
        endpoint: str,
        output: str,
        source: str | None = None,
        manifest: str | None = None,
        name: str | None = None,
        executor: Literal["local", "ray"] = "local",
        address: str | None = None,
    ) -> schemas.BatchJobInfo:
        """Run ``endpoint``'s model over every image of ``source`` (an s3:// prefix or a local
        folder on the server inside an allowed root) or ``manifest``; answers under ``output``.
        ``executor="ray"`` runs the model on the Ray cluster at ``address`` (default ``auto``)."""
        body = schemas.BatchJobCreate(
            endpoint=endpoint,
            output=output,
            source=source,
            manifest=manifest,
            name=name,
            executor=executor,
            address=address,
        )
        return self._http.model(schemas.BatchJobInfo, "POST", "/batch-jobs", json_body=body.model_dump())

    def describe_batch_job(self, name: str) -> schemas.BatchJobInfo:
        return self._http.model(schemas.BatchJobInfo, "GET", f"/batch-jobs/{_q(name)}")

    def list_batch_jobs(self, *, status: str | None = None, limit: int = 100) -> list[schemas.BatchJobInfo]:
        params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
        return self._http.models(schemas.BatchJobInfo, "GET", "/batch-jobs", params=params)

    def batch_job_failures(self, name: str, *, limit: int = 1000) -> list[schemas.BatchFailure]:
        """The images the job could not read or run, with the reason."""
        return self._http.models(
            schemas.BatchFailure, "GET", f"/batch-jobs/{_q(name)}/failures", params={"limit": limit}
        )

    def cancel_batch_job(self, name: str) -> schemas.BatchJobInfo:
        return self._http.model(schemas.BatchJobInfo, "POST", f"/batch-jobs/{_q(name)}/cancel")

    def wait_for_batch_job(
        self, name: str, *, timeout: float = 86400.0, poll_interval: float = 2.0
    ) -> schemas.BatchJobInfo:
        """Poll until the job is Completed, Cancelled or Failed; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (job := self.describe_batch_job(name)).status in ("Pending", "Running"):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Batch job '{name}' is still {job.status} after {timeout:g} s.")
            time.sleep(poll_interval)
        return job


class WorkerClient:
    """A reviewer's client: take tasks, answer them. Create it with ``sign_in``."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        http_client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self._http = _Http(
            url,
            auth=None,
            headers={"Authorization": f"Bearer {token}"},
            http_client=http_client,
            timeout=timeout,
        )

    @classmethod
    def sign_in(cls, url: str, email: str, password: str, *, http_client: httpx.Client | None = None) -> WorkerClient:
        session = _worker_session(url, "/worker/sign-in", {"email": email, "password": password}, http_client)
        return cls(url, token=session.token, http_client=http_client)

    @classmethod
    def accept_invitation(
        cls, url: str, token: str, password: str, *, http_client: httpx.Client | None = None
    ) -> WorkerClient:
        session = _worker_session(url, "/worker/accept-invitation", {"token": token, "password": password}, http_client)
        return cls(url, token=session.token, http_client=http_client)

    def close(self) -> None:
        self._http.close()

    def sign_out(self) -> None:
        """End this worker's API tokens (every device's), then close the client."""
        try:
            self._http.call("POST", "/worker/sign-out")
        finally:
            self.close()

    def jobs(self) -> list[schemas.Job]:
        return self._http.models(schemas.Job, "GET", "/worker/jobs")

    def next_task(self, flow: str | None = None) -> schemas.Task | None:
        """The task you hold in that job, or the next waiting one; None when none waits."""
        response = self._http.call("POST", "/worker/tasks/next", json_body={"flow": flow})
        if response.status_code == 204:
            return None
        return schemas.Task.model_validate(response.json())

    def get_task(self, task_id: int) -> schemas.Task:
        return self._http.model(schemas.Task, "GET", f"/worker/tasks/{task_id}")

    def release(self, task_id: int) -> None:
        self._http.call("POST", f"/worker/tasks/{task_id}/release")

    def decline(self, task_id: int) -> None:
        self._http.call("POST", f"/worker/tasks/{task_id}/decline")

    def submit(self, task_id: int, answer: dict[str, Any]) -> None:
        if not isinstance(answer, dict):
            raise ValidationError("The answer must be a JSON object.")
        self._http.call("POST", f"/worker/tasks/{task_id}/submit", json_body={"answer": answer})
