"""ARNs in AWS's format, with the configured region and 12-digit account."""

from __future__ import annotations

import re

from loopin.errors import ValidationError

_ARN = re.compile(r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:(?P<kind>[a-z\-]+)/(?P<rest>.+)$")


def arn(region: str, account_id: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account_id}:{kind}/{name}"


def name_from_arn(value: str, kind: str) -> str:
    """The resource name in an ARN of ``kind`` (the last path segment)."""
    match = _ARN.fullmatch(value)
    if not match or match["kind"] != kind:
        raise ValidationError(f"'{value}' is not a {kind} ARN (arn:aws:sagemaker:<region>:<account>:{kind}/<name>).")
    return match["rest"].rsplit("/", 1)[-1]
