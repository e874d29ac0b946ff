"""The OpenAPI document and /docs: the document says only what the API really answers, and
/docs serves Swagger UI from a pinned package (fastapi-offline), with no CDN."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from drawdown.api.endpoints import document_routes

# FastAPI adds these to every route with parameters; drawdown answers 400, never 422.
_UNSENT = ("HTTPValidationError", "ValidationError")


def create(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose /docs and /redoc load their assets from the app itself."""
    app = FastAPIOffline(
        swagger_ui_parameters={"persistAuthorization": True, "displayOperationId": True},
        **kwargs,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # as FastAPI.openapi, with each endpoint (api/endpoints.py) as its documentation
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                terms_of_service=app.terms_of_service,
                contact=app.contact,
                license_info=app.license_info,
                routes=document_routes(app),
                webhooks=app.webhooks.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
                external_docs=app.openapi_external_docs,
            )
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
