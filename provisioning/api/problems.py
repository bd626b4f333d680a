"""Errors as RFC 9457 problem details (application/problem+json) that say what is wrong.

Each exception the API or the services raise maps to one status; the message is the service's own (never a secret:
services word their errors for the pages too). Validation errors also list each field and what is wrong with it.
"""

import logging
import re
from contextlib import contextmanager
from http import HTTPStatus

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as RequestValidationError

from provisioning.services.operations.running import TooManyOperations

from ..clients.errors import ProviderError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class FieldProblem(Schema):
    field: str
    message: str


class Problem(Schema):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    request_id: str = ""
    errors: list[FieldProblem] = []


class ApiProblem(Exception):
    """An error response raised from an endpoint: status and what is wrong."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def problem_response(request, status, detail, errors=(), headers=None):
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "request_id": getattr(request, "request_id", ""),
        "errors": list(errors),
    }
    response = JsonResponse(body, status=status, content_type=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@contextmanager
def refused(status):
    """A service's ValidationError raised inside `with refused(409):` becomes a problem with that status."""
    try:
        yield
    except TooManyOperations:
        raise
    except ValidationError as exc:
        raise ApiProblem(status, " ".join(exc.messages)) from None


AUTHENTICATE = 'Bearer realm="orgdns"'


def install(api):
    """Route every error of api through problem_response."""

    @api.exception_handler(ApiProblem)
    def api_problem(request, exc):
        return problem_response(request, exc.status, exc.detail)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request, exc):
        reason = getattr(request, "authentication_problem", None)
        detail = reason or "Authenticate with an API token (Authorization: Bearer <token>) or a logged-in session."
        header = AUTHENTICATE + (', error="invalid_token"' if reason else "")
        return problem_response(request, 401, detail, headers={"WWW-Authenticate": header})

    @api.exception_handler(Throttled)
    def throttled(request, exc):
        detail = "Too many requests for this token: slow down and retry after the time in Retry-After."
        return problem_response(request, 429, detail)

    @api.exception_handler(HttpError)
    def http_error(request, exc):
        return problem_response(request, exc.status_code, str(exc))

    @api.exception_handler(RequestValidationError)
    def invalid_request(request, exc):
        errors = [{"field": field_name(error["loc"]), "message": error["msg"]} for error in exc.errors]
        detail = "The request is not valid: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(request, 422, detail, errors)

    @api.exception_handler(ValidationError)
    def refused_by_service(request, exc):
        return problem_response(request, 422, " ".join(exc.messages))

    @api.exception_handler(TooManyOperations)
    def too_many_operations(request, exc):
        return problem_response(request, 429, " ".join(exc.messages), headers={"Retry-After": str(exc.retry_after)})

    @api.exception_handler(PermissionDenied)
    def forbidden(request, exc):
        return problem_response(request, 403, str(exc) or "You may not do this.")

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return problem_response(request, 404, not_found_detail(str(exc)))

    @api.exception_handler(ProviderError)
    def remote_unavailable(request, exc):
        return problem_response(request, 503, f"Try again later: {exc.message}", headers={"Retry-After": "30"})

    @api.exception_handler(Exception)
    def crashed(request, exc):
        log.exception("API request %s %s failed", request.method, request.path)
        return problem_response(request, 500, "Internal error: the operators have the details in the log.")


def field_name(location):
    """("body", "body", "install", 0, "cluster") → "install.0.cluster"; ("query", "page") → "page"."""
    source, *path = location
    if source == "body":
        path = path[1:]
    return ".".join(str(part) for part in path) or source


def not_found_detail(message):
    """get_object_or_404's "No Cluster matches the given query." in words that also cover other organizations'."""
    named = re.fullmatch(r"No (\w+) matches the given query\.", message)
    if named:
        return f"No {named.group(1).lower()} with this name or id in your organizations."
    return message or "Not found."


def openapi_responses(schema, common):
    """Declare problem responses as application/problem+json, and add `common` ones (status → description) to every
    operation that does not say otherwise."""
    for path in schema["paths"].values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in common.items():
                responses.setdefault(status, {"description": description, "content": _problem_content()})
            for response in responses.values():
                content = response.get("content", {})
                json_schema = content.get("application/json", {}).get("schema", {})
                if json_schema.get("$ref", "").endswith("/Problem"):
                    response["content"] = {MEDIA_TYPE: content.pop("application/json")}
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    return schema


def _problem_content():
    return {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
