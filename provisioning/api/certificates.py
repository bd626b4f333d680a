"""TLS certificates: issue, install, renew, delete; download the public PEMs (never a key)."""

from django.http import Http404, HttpResponse
from ninja import Query, Router

from provisioning import scoping
from provisioning.services.certificates import actions as certificates

from ..models import CHANGE
from . import schemas
from .pagination import PageParams, page_of, paginate
from .params import Id, OrgName
from .problems import Problem, refused
from .responses import accepted, queue

router = Router(tags=["certificates"])

PEM = {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}, "description": "PEM"}


@router.get("/organizations/{org}/certificates", response={200: page_of(schemas.Certificate), 404: Problem})
def list_certificates(request, org: OrgName, params: Query[PageParams], state: schemas.CertificateState | None = None):
    """The organization's certificates, newest first; deleted ones only when state=deleted asks for them."""
    organization = scoping.organization(request, org)
    return paginate(request, certificates.certificates_of(organization, state), params)


@router.post(
    "/organizations/{org}/certificates",
    response={202: schemas.CertificateAccepted, 403: Problem, 404: Problem, 422: Problem},
)
def issue_certificate(request, response: HttpResponse, org: OrgName, body: schemas.NewCertificate):
    """Queue issuing a certificate for names in the organization's zone (wildcards allowed), and installing it as a
    kubernetes.io/tls Secret in each `install` target."""
    organization = scoping.organization(request, org, CHANGE)
    with refused(422):
        targets = [
            (certificates.get_installable_cluster(organization, t.cluster), t.namespace, t.secret_name)
            for t in body.install
        ]
        certificate, operation = certificates.issue_certificate(organization, body.dns_names, targets, request.user)
    return accepted(response, operation, certificate=certificates.current(certificate))


@router.get(
    "/organizations/{org}/certificates/ca.crt",
    response={200: None, 404: Problem, 503: Problem},
    openapi_extra={"responses": {200: PEM}},
)
def download_ca_certificate(request, org: OrgName):
    """The organization CA's certificate, to trust its certificates with (its key never leaves Vault)."""
    organization = scoping.organization(request, org)
    pem = certificates.ca_certificate_pem(organization)
    if pem is None:
        raise Http404(f"{organization.name} has no CA yet: it is made with its first certificate.")
    return pem_response(pem, f"{organization.name}-ca.crt")


@router.get("/organizations/{org}/certificates/{certificate_id}", response={200: schemas.Certificate, 404: Problem})
def get_certificate(request, org: OrgName, certificate_id: Id):
    return certificates.current(scoping.certificate(request, org, certificate_id))


@router.get(
    "/organizations/{org}/certificates/{certificate_id}/certificate.crt",
    response={200: None, 404: Problem, 503: Problem},
    openapi_extra={"responses": {200: PEM}},
)
def download_certificate(request, org: OrgName, certificate_id: Id):
    """The certificate (never its key)."""
    certificate = scoping.certificate(request, org, certificate_id)
    pem = certificates.certificate_pem(certificate)
    if pem is None:
        raise Http404("This certificate is not issued, or was deleted.")
    return pem_response(pem, f"{certificate.organization.name}-certificate-{certificate.pk}.crt")


def pem_response(pem, filename):
    response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@router.post(
    "/organizations/{org}/certificates/{certificate_id}/install",
    response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem, 422: Problem},
)
def install_certificate(request, response: HttpResponse, org: OrgName, certificate_id: Id, body: schemas.Target):
    """Queue installing the certificate as a Secret in one more cluster (or again where it is)."""
    certificate = scoping.certificate(request, org, certificate_id, CHANGE)
    with refused(422):
        cluster = certificates.get_installable_cluster(certificate.organization, body.cluster)
    with refused(409):
        operation = certificates.install_certificate(
            certificate, cluster, body.namespace, body.secret_name, request.user
        )
    return accepted(response, operation)


@router.post(
    "/organizations/{org}/certificates/{certificate_id}/renew",
    response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem},
)
def renew_certificate(request, response: HttpResponse, org: OrgName, certificate_id: Id):
    """Queue a new key and certificate, installed everywhere the old one is (also retries a failed issue)."""
    certificate = scoping.certificate(request, org, certificate_id, CHANGE)
    return queue(response, certificates.renew_certificate, certificate, request.user)


@router.delete(
    "/organizations/{org}/certificates/{certificate_id}",
    response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem},
)
def delete_certificate(request, response: HttpResponse, org: OrgName, certificate_id: Id):
    """Queue removing the certificate's Secrets from the clusters and its material from Vault."""
    certificate = scoping.certificate(request, org, certificate_id, CHANGE)
    return queue(response, certificates.delete_certificate, certificate, request.user)
