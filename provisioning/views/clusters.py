"""Cluster pages: register, watch, re-provision, deregister."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from provisioning import scoping
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters import least_privilege
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster

from ..forms import RegisterClusterForm, ReplaceTokenForm
from ..models import CHANGE


@sensitive_post_parameters("token", "kubeconfig")
def cluster_register(request, org):
    org = scoping.organization(request, org, CHANGE)
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
    context = {"org": org, "form": form, **setup_context(org)}
    return render(request, "provisioning/cluster_form.html", context)


def setup_context(org, cluster=None):
    return {
        "bootstrap": least_privilege.bootstrap_yaml(org, cluster),
        "token_command": least_privilege.token_command(),
        "kubeconfig_commands": least_privilege.kubeconfig_commands(),
        "delete_command": least_privilege.delete_command(),
        "externaldns_namespace": least_privilege.namespace(),
    }


def cluster_bootstrap(request, org):
    """The bootstrap manifest, as a file to apply."""
    org = scoping.organization(request, org)
    return _yaml_download(least_privilege.bootstrap_yaml(org))


def registered_cluster_bootstrap(request, org, pk):
    cluster = scoping.cluster(request, org, pk)
    return _yaml_download(least_privilege.bootstrap_yaml(cluster.organization, cluster))


def _yaml_download(text):
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="orgdns-bootstrap.yaml"'
    return response


def cluster_detail(request, org, pk):
    cluster = scoping.cluster(request, org, pk)
    context = {
        "org": cluster.organization,
        "cluster": cluster,
        "operation": cluster.operations.first(),
        "operations": cluster.operations.select_related("organization")[:10],
        "can_write": cluster.organization.allows(request.user, CHANGE),
        "token_excess": [part for part in cluster.token_excess.split("; ") if part],
        "setup_drift": cluster.setup_drift.splitlines(),
        "replace_token_form": ReplaceTokenForm(),
        **setup_context(cluster.organization, cluster),
    }
    return render(request, "provisioning/cluster_detail.html", context)


@require_POST
def cluster_deregister(request, org, pk):
    return _cluster_action(
        request,
        org,
        pk,
        DeregisterCluster.enqueue,
        "Deregistering {}: ExternalDNS and its records are being removed.",
    )


@sensitive_post_parameters("token", "kubeconfig")
@require_POST
def cluster_replace_token(request, org, pk):
    cluster = scoping.cluster(request, org, pk, CHANGE)
    form = ReplaceTokenForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            clusters.replace_token(cluster, form.cleaned_data["connection"], request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"orgdns now uses the new token for {cluster.name}; provisioning it again.")
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return redirect("cluster", cluster.organization.name, cluster.pk)


@require_POST
def cluster_reprovision(request, org, pk):
    return _cluster_action(request, org, pk, RegisterCluster.enqueue_again, "Provisioning {} again.")


def _cluster_action(request, org, pk, action, success):
    cluster = scoping.cluster(request, org, pk, CHANGE)
    try:
        action(cluster, request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, success.format(cluster.name))
    return redirect("cluster", cluster.organization.name, cluster.pk)
