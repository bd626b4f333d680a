"""Clusters: register (kubeconfig, or URL/CA/token), state, re-provision, deregister."""

from django.http import HttpResponse
from ninja import Query, Router

from provisioning import scoping
from provisioning.services.clusters import actions as clusters
from provisioning.services.clusters import least_privilege
from provisioning.services.clusters.jobs import DeregisterCluster, RegisterCluster

from ..clients import externaldns
from ..models import CHANGE
from . import schemas
from .pagination import PageParams, page_of, paginate
from .params import Id, OrgName
from .problems import Problem, refused
from .responses import accepted, queue

router = Router(tags=["clusters"])


def with_latest_operation(cluster):
    cluster.latest_operation = clusters.latest_operation(cluster)
    return cluster


@router.get("/organizations/{org}/clusters", response={200: page_of(schemas.Cluster), 404: Problem})
def list_clusters(request, org: OrgName, params: Query[PageParams], state: schemas.ClusterState | None = None):
    """The organization's clusters by name; deregistered ones only when state=deregistered asks for them."""
    organization = scoping.organization(request, org)
    return paginate(request, clusters.clusters_of(organization, state), params)


def bootstrap_of(organization, cluster=None):
    return {
        "manifest": least_privilege.bootstrap_yaml(organization, cluster),
        "namespace": least_privilege.namespace(),
        "service_account": externaldns.ORGDNS_SERVICE_ACCOUNT,
        "token_command": least_privilege.token_command(),
        "kubeconfig_commands": least_privilege.kubeconfig_commands(),
        "delete_command": least_privilege.delete_command(),
        "certificates_cluster_role": externaldns.CERTIFICATES_CLUSTER_ROLE,
    }


@router.get("/organizations/{org}/clusters/bootstrap", response={200: schemas.Bootstrap, 404: Problem})
def cluster_bootstrap(request, org: OrgName):
    """The bootstrap manifest to apply (as the cluster's admin) before registering a cluster: it creates ExternalDNS's
    namespace and RBAC and orgdns's ServiceAccount, whose token registration takes."""
    return bootstrap_of(scoping.organization(request, org))


@router.get("/organizations/{org}/clusters/{cluster_id}/bootstrap", response={200: schemas.Bootstrap, 404: Problem})
def registered_cluster_bootstrap(request, org: OrgName, cluster_id: Id):
    """The bootstrap manifest of a registered cluster (to re-apply after drift, or to move a cluster registered before
    it)."""
    cluster = scoping.cluster(request, org, cluster_id)
    return bootstrap_of(cluster.organization, cluster)


@router.post(
    "/organizations/{org}/clusters",
    response={202: schemas.ClusterAccepted, 403: Problem, 404: Problem, 422: Problem},
)
def register_cluster(request, response: HttpResponse, org: OrgName, body: schemas.NewCluster):
    """Check that orgdns can reach the cluster with these credentials, keep them in Vault and queue the job that
    provisions the zone, the credentials and ExternalDNS. Follow the operation until it has finished."""
    organization = scoping.organization(request, org, CHANGE)
    with refused(422):
        connection = clusters.cluster_connection(
            api_server=body.api_server,
            token=body.token,
            ca_pem=body.ca_pem,
            kubeconfig=body.kubeconfig,
            context=body.context,
        )
        cluster, operation = clusters.register_cluster(organization, body.name, connection, request.user)
    return accepted(response, operation, cluster=with_latest_operation(cluster))


@router.get("/organizations/{org}/clusters/{cluster_id}", response={200: schemas.ClusterDetail, 404: Problem})
def get_cluster(request, org: OrgName, cluster_id: Id):
    return with_latest_operation(scoping.cluster(request, org, cluster_id))


@router.post(
    "/organizations/{org}/clusters/{cluster_id}/reprovision",
    response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem},
)
def reprovision_cluster(request, response: HttpResponse, org: OrgName, cluster_id: Id):
    """Run provisioning again (a ready cluster, or one in error): every step converges from where it stands."""
    cluster = scoping.cluster(request, org, cluster_id, CHANGE)
    return queue(response, RegisterCluster.enqueue_again, cluster, request.user)


@router.delete(
    "/organizations/{org}/clusters/{cluster_id}",
    response={202: schemas.Accepted, 403: Problem, 404: Problem, 409: Problem},
)
def deregister_cluster(request, response: HttpResponse, org: OrgName, cluster_id: Id):
    """Queue the deregistration: ExternalDNS leaves the cluster, its records leave the zone, its credentials leave
    Vault. The cluster stays listed as deregistered."""
    cluster = scoping.cluster(request, org, cluster_id, CHANGE)
    return queue(response, DeregisterCluster.enqueue, cluster, request.user)
