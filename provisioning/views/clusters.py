"""Cluster pages: register, watch, re-provision, deregister."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from ..forms import RegisterClusterForm
from ..services import access, clusters


@sensitive_post_parameters("token", "kubeconfig")
def cluster_register(request, org):
    org = access.get_writable_org_for_user(request.user, org, f"{request.method} {request.path}")
    form = RegisterClusterForm(request.POST or None, request.FILES or None)
    if form.is_valid():
        try:
            cluster, _ = clusters.register_cluster(
                org, form.cleaned_data["name"], form.cleaned_data["connection"], request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("cluster", org.name, cluster.pk)
    return render(request, "provisioning/cluster_form.html", {"org": org, "form": form})


def cluster_detail(request, org, pk):
    cluster = access.get_cluster_for_user(request.user, org, pk)
    context = {
        "org": cluster.organization,
        "cluster": cluster,
        "operation": cluster.operations.first(),
        "operations": cluster.operations.select_related("organization")[:10],
        "can_write": access.can_write(request.user, cluster.organization),
    }
    return render(request, "provisioning/cluster_detail.html", context)


@require_POST
def cluster_deregister(request, org, pk):
    return _cluster_action(
        request,
        org,
        pk,
        clusters.deregister_cluster,
        "Deregistering {}: ExternalDNS and its records are being removed.",
    )


@require_POST
def cluster_reprovision(request, org, pk):
    return _cluster_action(request, org, pk, clusters.retry_registration, "Provisioning {} again.")


def _cluster_action(request, org, pk, action, success):
    cluster = access.get_writable_cluster_for_user(request.user, org, pk, f"{request.method} {request.path}")
    try:
        action(cluster, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, success.format(cluster.name))
    return redirect("cluster", cluster.organization.name, cluster.pk)
