"""Rendering task templates the way A2I does: Liquid with ``task.input`` bound to the parsed
InputContent, HTML-escaped output, lists and objects printed as JSON, and A2I's filters
(``grant_read_access``, ``to_json``, ``escape``, ``escape_once``, ``skip_autoescape``).

The input is untrusted. Everything printed is escaped unless the template says
``skip_autoescape``; on top of HTML's five characters the backslash is escaped too, so a
value printed inside a JavaScript string literal cannot escape its closing quote.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, TextIO

from liquid import BoundTemplate, Environment, Markup, RenderContext, is_undefined
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import FilterArgumentError, LiquidError
from markupsafe import escape as _markup_escape

from loopin.errors import LoopinError, ValidationError

# Templates load AWS's element library (the first generation, or crowd-html-elements-v2.js
# with the generative-AI elements); loopin serves its own, one library for both, here.
CROWD_SCRIPT_PATH = "/static/crowd-html-elements.js"
_AWS_CROWD_SCRIPT = re.compile(r"(?:https?:)?//assets\.crowd\.aws/crowd-html-elements(?:-v2)?\.js")

_grant: ContextVar[Callable[[str], str]] = ContextVar("grant_read_access")


class RenderError(ValidationError):
    """The template could not be rendered for this input; ``details`` has the line."""


def render_task(
    template: str,
    task_input: dict[str, Any],
    *,
    grant_read_access: Callable[[str], str],
    crowd_script_url: str = CROWD_SCRIPT_PATH,
) -> str:
    """The task page's HTML for one task. ``grant_read_access`` turns an S3 location into a
    signed, expiring URL for exactly that object; AWS's element script becomes
    ``crowd_script_url``."""
    token = _grant.set(grant_read_access)
    try:
        return _parse(template, crowd_script_url).render(task={"input": a2i_view(task_input)})
    except LiquidError as exc:
        raise _render_error(exc) from exc
    finally:
        _grant.reset(token)


def a2i_view(task_input: dict[str, Any]) -> dict[str, Any]:
    """The input as a template sees it. Input in the shape of A2I's built-in task types
    (``aiServiceRequest``, ``aiServiceResponse``, ``humanLoopContext``) without a
    ``selectedAiServiceResponse`` gets the whole ``aiServiceResponse`` as that: what A2I
    selects when every inference is to be reviewed, and what AWS's templates read. The
    loop's stored input (and its output.json) stays as it was given."""
    response = task_input.get("aiServiceResponse")
    if isinstance(response, dict) and "selectedAiServiceResponse" not in task_input:
        return {**task_input, "selectedAiServiceResponse": response}
    return task_input


def _render_error(exc: LiquidError) -> RenderError:
    context = exc.context()
    message = str(exc.message) if exc.message is not None else type(exc).__name__
    if context is None:
        return RenderError(f"The task template cannot be rendered: {message}", details={"error": message})
    line = context[0]
    return RenderError(
        f"The task template cannot be rendered (line {line}): {message}",
        details={"line": line, "error": message},
    )


# -- printing ------------------------------------------------------------------------------


def _text(value: object) -> str:
    """What ``{{ value }}`` shows before escaping: objects and lists as JSON (A2I's rule)."""
    if isinstance(value, Markup):
        return value
    if value is None or is_undefined(value):
        return ""
    if isinstance(value, dict | list | tuple):
        return _json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(value: object) -> str:
    return json.dumps(None if is_undefined(value) else value, ensure_ascii=False, separators=(",", ":"), default=str)


def _escape(text: str) -> Markup:
    if isinstance(text, Markup):
        return text
    return Markup(str(_markup_escape(text)).replace("\\", "&#92;"))


def _output(value: object, autoescape: bool) -> str:
    text = _text(value)
    return _escape(text) if autoescape else text


class _JsonOutputNode(OutputNode):
    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        return buffer.write(_output(self.expression.evaluate(context), context.autoescape))

    async def render_to_output_async(self, context: RenderContext, buffer: TextIO) -> int:
        return buffer.write(_output(await self.expression.evaluate_async(context), context.autoescape))


class _JsonEchoNode(EchoNode):
    render_to_output = _JsonOutputNode.render_to_output
    render_to_output_async = _JsonOutputNode.render_to_output_async


class _JsonOutput(Output):
    node_class = _JsonOutputNode


class _JsonEcho(EchoTag):
    node_class = _JsonEchoNode


# -- A2I's filters -----------------------------------------------------------------------------


def _grant_read_access(value: object) -> str:
    uri = str(_text(value)).strip()
    if not uri:
        return ""
    try:
        return _grant.get()(uri)
    except LoopinError as exc:
        raise FilterArgumentError(f"grant_read_access: {exc.message}", token=None) from exc


def _to_json(value: object) -> str:
    return _json(value)


def _escape_filter(value: object) -> Markup:
    return _escape(_text(value))


def _escape_once(value: object) -> Markup:
    return _escape(html.unescape(_text(value)))


def _skip_autoescape(value: object) -> Markup:
    return Markup(_text(value))


class _TaskEnvironment(Environment):
    # Guards against templates that would make a page of unbounded size or run forever.
    loop_iteration_limit = 1_000_000
    output_stream_limit = 64 * 1024 * 1024


def _environment() -> Environment:
    env = _TaskEnvironment(autoescape=True)
    env.add_tag(_JsonOutput)
    env.add_tag(_JsonEcho)
    env.add_filter("grant_read_access", _grant_read_access)
    env.add_filter("to_json", _to_json)
    env.add_filter("escape", _escape_filter)
    env.add_filter("escape_once", _escape_once)
    env.add_filter("skip_autoescape", _skip_autoescape)
    return env


_ENV = _environment()


@lru_cache(maxsize=64)
def _parse(template: str, crowd_script_url: str) -> BoundTemplate:
    return _ENV.from_string(_AWS_CROWD_SCRIPT.sub(lambda _: crowd_script_url, template))
