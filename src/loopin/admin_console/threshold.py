"""Admin console section: threshold (being built)."""

from __future__ import annotations

from loopin.admin_console.base import AdminPages


def add_routes(pages: AdminPages) -> None:
    """Adds this section's routes to ``pages.router``."""
