"""``/api/v1/docs``: Swagger UI for the OpenAPI document, served from the package's own copy
(swagger-ui-bundle), so it works offline and loads nothing from elsewhere, under a strict
Content-Security-Policy (no inline script: the page's start-up code is a file of its own)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
_SERVED = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>loopin API</title>
<link rel="icon" href="docs/favicon-32x32.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/start.js"></script>
</body>
</html>
"""
# The packaged Swagger UI (4.x) draws OpenAPI 3.0 documents only; FastAPI writes 3.1 ones,
# which it draws well enough when told they are 3.0.
_START = """fetch(new URL("openapi.json", document.baseURI).href)
  .then(function (answer) { return answer.json(); })
  .then(function (spec) {
    spec.openapi = "3.0.3";
    window.ui = SwaggerUIBundle({
      spec: spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    });
  });
"""


def docs_routes(api: FastAPI) -> None:
    @api.get("/docs", include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return HTMLResponse(_PAGE, headers=_HEADERS)

    @api.get("/docs/start.js", include_in_schema=False)
    def docs_start() -> Response:
        return Response(_START, media_type="text/javascript", headers=_HEADERS)

    @api.get("/docs/{asset}", include_in_schema=False)
    def docs_asset(asset: str) -> Response:
        if asset not in _SERVED:
            return Response(status_code=404, headers=_HEADERS)
        headers = {**_HEADERS, "Cache-Control": "public, max-age=86400"}
        return FileResponse(_ASSETS / asset, media_type=_SERVED[asset], headers=headers)
