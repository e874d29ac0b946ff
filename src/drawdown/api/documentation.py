"""The OpenAPI document and /docs: the document says only what the API really answers, and
/docs serves Swagger UI from a pinned package (fastapi-offline), with no CDN."""

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

# FastAPI adds these to every route with parameters; drawdown answers 400, never 422.
_UNSENT = ("HTTPValidationError", "ValidationError")


def create(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose /docs and /redoc load their assets from the app itself."""
    app = FastAPIOffline(
        swagger_ui_parameters={"persistAuthorization": True, "displayOperationId": True},
        **kwargs,
    )
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = default_openapi()
            for operations in document["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for name in _UNSENT:
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
