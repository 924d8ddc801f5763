"""The native REST API under ``/api/v1``."""

from loopin.web.api.app import create_api

__all__ = ["create_api"]
