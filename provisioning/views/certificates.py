"""Certificate pages: every view starts from a tenant-scoped lookup; writers only for actions."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from provisioning import scoping
from provisioning.services.certificates import actions as certificates
from provisioning.services.clusters import least_privilege

from ..clients.errors import ProviderError
from ..forms import InstallCertificateForm, IssueCertificateForm
from ..models import CHANGE
from .operations import HTMX_STOP_POLLING


def organization_certificate_list(request, org):
    org = scoping.organization(request, org)
    context = {
        "org": org,
        "certificates": certificates.certificates_of(org),
        "can_write": org.allows(request.user, CHANGE),
    }
    return render(request, "provisioning/certificate_list.html", context)


def certificate_issue(request, org):
    org = scoping.organization(request, org, CHANGE)
    form = IssueCertificateForm(request.POST or None, organization=org)
    if form.is_valid():
        data = form.cleaned_data
        try:
            certificate, _ = certificates.issue_certificate(org, data["names"], data["targets"], request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("certificate", org.name, certificate.pk)
    return render(request, "provisioning/certificate_form.html", {"org": org, "form": form})


def _detail_context(request, certificate):
    """The certificate page, which polls (the summary view) while a job works on the certificate or its latest
    operation has not finished."""
    operation = certificate.operations.select_related("cluster").first()
    return {
        "org": certificate.organization,
        "certificate": certificate,
        "installations": certificate.installations.select_related("cluster"),
        "can_write": certificate.organization.allows(request.user, CHANGE),
        "operation": operation,
        "operations": certificate.operations.select_related("organization", "cluster")[:10],
        "polling": certificate.busy or (operation is not None and not operation.finished),
    }


def certificate_detail(request, org, pk):
    certificate = scoping.certificate(request, org, pk)
    return render(request, "provisioning/certificate_detail.html", _detail_context(request, certificate))


def certificate_summary(request, org, pk):
    """The live part of the certificate page; answering 286 tells htmx to stop polling once nothing is under way."""
    certificate = scoping.certificate(request, org, pk)
    context = _detail_context(request, certificate)
    response = render(request, "provisioning/certificate_detail.html#summary", context)
    if not context["polling"]:
        response.status_code = HTMX_STOP_POLLING
    return response


def certificate_install(request, org, pk):
    certificate = scoping.certificate(request, org, pk, CHANGE)
    form = InstallCertificateForm(request.POST or None, organization=certificate.organization, initial=request.GET)
    if form.is_valid():
        data = form.cleaned_data
        try:
            certificates.install_certificate(
                certificate, data["cluster"], data["namespace"], data["secret_name"], request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Installing {certificate} into {data['cluster'].name}.")
            return redirect("certificate", org, certificate.pk)
    context = {
        "org": certificate.organization,
        "certificate": certificate,
        "form": form,
        "clusters": certificates.installable_clusters(certificate.organization).order_by("name"),
        "rolebinding_command": least_privilege.rolebinding_command("NAMESPACE"),
    }
    return render(request, "provisioning/certificate_install.html", context)


def _certificate_action(request, org, pk, action, success):
    certificate = scoping.certificate(request, org, pk, CHANGE)
    try:
        action(certificate, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, success.format(certificate))
    return redirect("certificate", org, certificate.pk)


@require_POST
def certificate_renew(request, org, pk):
    success = "Renewing {}: a new key and certificate, installed everywhere."
    return _certificate_action(request, org, pk, certificates.renew_certificate, success)


@require_POST
def certificate_delete(request, org, pk):
    success = "Deleting {}: its Secrets and its key are being removed."
    return _certificate_action(request, org, pk, certificates.delete_certificate, success)


def _pem_response(read, filename, missing):
    """Public PEM from Vault as a download; 404 with `missing` if there is none, 503 if Vault does not answer."""
    try:
        pem = read()
    except ProviderError as exc:
        return HttpResponse(f"Cannot read it from Vault now: {exc.message}", status=503, content_type="text/plain")
    if pem is None:
        raise Http404(missing)
    response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def ca_download(request, org):
    org = scoping.organization(request, org)
    return _pem_response(
        lambda: certificates.ca_certificate_pem(org),
        f"{org.name}-ca.crt",
        "No CA yet: it is made with the first certificate.",
    )


def certificate_download(request, org, pk):
    certificate = scoping.certificate(request, org, pk)
    return _pem_response(
        lambda: certificates.certificate_pem(certificate),
        f"{certificate.organization.name}-certificate-{certificate.pk}.crt",
        "This certificate is not issued, or was deleted.",
    )
