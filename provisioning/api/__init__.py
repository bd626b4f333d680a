"""The REST API, /api/v1/: the pages' actions and views for programs, through the same services and access rules.

Built with django-ninja: each endpoint declares its input and output schemas, from which the OpenAPI document at
/api/v1/openapi.json is generated and against which every response is validated.
"""

from ninja import NinjaAPI, Router
from ninja.openapi.docs import Swagger

from . import audit, certificates, clusters, operations, organizations, problems, schemas, zones
from .security import PerCallerRate, SessionAuth, TokenAuth

VERSION = "1"

COMMON_PROBLEMS = {
    400: "The request cannot be parsed (e.g. a body that is not JSON).",
    401: "No valid API token or session.",
    422: "The request is not valid: `errors` names each field and what is wrong with it.",
    429: (
        "Too many requests for this token, or too many operations queued or running in the organization: wait as "
        "Retry-After says."
    ),
}


class OrgdnsAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation):
        return operation.view_func.__name__

    def get_openapi_schema(self, **kwargs):
        return problems.openapi_responses(super().get_openapi_schema(**kwargs), COMMON_PROBLEMS)


api = OrgdnsAPI(
    title="orgdns",
    version=VERSION,
    description=(
        "Per-organization Route53 zones, scoped credentials, ExternalDNS and TLS certificates. Authenticate with a "
        "personal API token (`Authorization: Bearer odt_…`, made on the API tokens page) or the browser session "
        "(with the X-CSRFToken header for changes). Errors are RFC 9457 problem details."
    ),
    urls_namespace="api-v1",
    auth=[TokenAuth(), SessionAuth()],
    throttle=[PerCallerRate()],
    docs=Swagger(settings={"persistAuthorization": False}),
)
problems.install(api)

account = Router(tags=["account"])


@account.get("/me", response=schemas.Me)
def get_me(request):
    """Who the API takes you for, and how you authenticated."""
    token = request.auth if request.auth is not request.user else None
    return {
        "username": request.user.get_username(),
        "is_staff": request.user.is_staff,
        "authenticated_by": "token" if token else "session",
        "token_name": token.name if token else None,
        "token_expires_at": token.expires_at if token else None,
    }


for router in (
    account,
    organizations.router,
    clusters.router,
    zones.router,
    certificates.router,
    operations.router,
    audit.router,
):
    api.add_router("", router)
