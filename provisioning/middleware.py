from .models import AuditEvent
from .services import audit


class AuditContextMiddleware:
    """Every request gets a request id (the caller's X-Request-ID if sane) under which its actions are audited."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        source = AuditEvent.Source.UI
        if request.path.startswith("/admin/"):
            source = AuditEvent.Source.ADMIN
        elif request.path.startswith("/api/"):
            source = AuditEvent.Source.API
        with audit.acting(source, actor=request.user, request_id=audit.new_request_id(request.headers.get("X-Request-ID"))) as context:
            request.request_id = context.request_id
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response
