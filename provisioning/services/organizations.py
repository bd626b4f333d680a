"""Organizations and who may see or change them."""

from django.db import transaction
from django.shortcuts import get_object_or_404

from ..models import Cluster, Membership, Operation, Organization

WRITE_ROLES = (Membership.Role.OWNER, Membership.Role.MEMBER)


def organizations_for(user):
    if user.is_staff:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user)


def can_write(user, organization):
    if user.is_staff:
        return True
    return Membership.objects.filter(user=user, organization=organization, role__in=WRITE_ROLES).exists()


def get_org_for_user(user, name):
    """The organization if the user may see it, else 404 (so others' names are not revealed)."""
    return get_object_or_404(organizations_for(user), name=name)


def get_cluster_for_user(user, org_name, pk):
    return get_object_or_404(
        Cluster.objects.select_related("organization"), organization__in=organizations_for(user), organization__name=org_name, pk=pk
    )


def get_operation_for_user(user, pk):
    return get_object_or_404(
        Operation.objects.select_related("organization", "cluster"), organization__in=organizations_for(user), pk=pk
    )


@transaction.atomic
def create_organization(name, owner=None):
    organization = Organization(name=name)
    organization.full_clean()
    organization.save()
    if owner is not None:
        Membership.objects.create(user=owner, organization=organization, role=Membership.Role.OWNER)
    return organization
