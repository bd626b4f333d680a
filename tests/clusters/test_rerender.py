"""Re-rendering ExternalDNS when clusters are added or removed (issue #9): `manage.py rerender_externaldns` queues a
job per ready cluster whose resync interval is off by more than the threshold, a bounded number at a time."""

import dataclasses
import io

import pytest
from django.core.management import call_command

from provisioning.models import Cluster, Operation
from provisioning.rules import budget
from provisioning.services.aws_accounts import assignment as accounts
from provisioning.services.aws_accounts import route53_budget
from provisioning.services.clusters.jobs import DeregisterCluster
from tests.clusters.test_externaldns import deployed_args
from tests.conftest import run_jobs
from tests.factories import register
from tests.pages.test_budget_page import clusters as make_clusters

pytestmark = pytest.mark.django_db(transaction=True)
RERENDER = "rerender_externaldns"


def rerender(*options):
    out = io.StringIO()
    call_command("rerender_externaldns", *options, stdout=out)
    return out.getvalue()


def interval_arg(cluster_api):
    return next(a for a in deployed_args(cluster_api) if a.startswith("--interval="))


def test_adding_and_removing_a_cluster_re_renders_the_other_within_the_budget(
    personas, make_cluster_api, settings, client
):
    # A rate at which one cluster resyncs every minute and two need about 107 s each.
    settings.ORGDNS_ROUTE53_ACCOUNT_RATE = 0.04
    first_api, second_api = make_cluster_api(), make_cluster_api()
    first = register(personas.acme, "first", first_api)
    plan = accounts.budget_of(accounts.main())
    assert first.externaldns_flags == dataclasses.asdict(budget.externaldns_flags(1, 1, first.owner_id, plan))
    registration = first.operations.get()
    (figures,) = route53_budget.account_budgets()  # what orgdns sent Route53 so far is that job's
    assert figures.measured_requests == registration.remote_calls["route53"] > 0
    assert rerender() == "0 re-renders queued, 0 left for a later run.\n"

    second = register(personas.globex, "second", second_api)
    wanted = budget.externaldns_flags(2, 2, first.owner_id, plan)
    assert second.externaldns_flags["interval"] == budget.externaldns_flags(2, 2, second.owner_id, plan).interval
    was = first.externaldns_flags["interval"]
    assert wanted.interval > 1.2 * was
    assert route53_budget.account_budgets()[0].stale == 1
    assert (
        rerender("--dry-run")
        == f"would queue  acme/first  {was} s -> {wanted.interval} s\n1 re-render would be queued, 0 left for a later run.\n"
    )
    assert not Operation.objects.filter(kind=RERENDER).exists()

    assert (
        rerender()
        == f"queued  acme/first  {was} s -> {wanted.interval} s\n1 re-render queued, 0 left for a later run.\n"
    )
    assert rerender() == "0 re-renders queued, 0 left for a later run.\n"  # its job is under way: not queued twice
    run_jobs()
    job = Operation.objects.get(kind=RERENDER)
    first.refresh_from_db()
    assert job.state == Operation.State.SUCCEEDED, job.error
    assert (first.state, first.externaldns_flags) == (Cluster.State.READY, dataclasses.asdict(wanted))
    assert interval_arg(first_api) == wanted.args()[0] and first_api.runner.pods  # the real ExternalDNS runs with it
    assert "route53" not in job.remote_calls  # orgdns itself sent Route53 nothing
    assert rerender() == "0 re-renders queued, 0 left for a later run.\n"

    # Staff see the job on the cluster's page like any other.
    client.force_login(personas.sam)
    assert "Re-render ExternalDNS" in client.get(f"/orgs/acme/clusters/{first.pk}/").content.decode()

    DeregisterCluster.enqueue(second)
    run_jobs()
    alone = budget.externaldns_flags(1, 2, first.owner_id, plan)
    assert (
        rerender()
        == f"queued  acme/first  {wanted.interval} s -> {alone.interval} s\n1 re-render queued, 0 left for a later run.\n"
    )
    run_jobs()
    assert interval_arg(first_api) == alone.args()[0]


@pytest.mark.integration
def test_re_renders_are_bounded_and_the_most_overspending_go_first(personas):
    plan = accounts.budget_of(accounts.main())
    (unknown,) = make_clusters(personas.acme, 1, prefix="unknown")
    (overspending,) = make_clusters(personas.acme, 1, budget.cluster_flags(30, budget=plan), prefix="fast")
    (underspending,) = make_clusters(personas.acme, 1, budget.cluster_flags(3600, budget=plan), prefix="slow")
    make_clusters(personas.acme, 1, budget.cluster_flags(3600, budget=plan), state=Cluster.State.ERROR, prefix="broken")
    make_clusters(personas.globex, 1, state=Cluster.State.PENDING, prefix="new")
    # Within the threshold of the wanted interval (60 s for this fleet): left alone.
    (close,) = make_clusters(personas.globex, 1, budget.cluster_flags(70, budget=plan), prefix="close")

    stale = route53_budget.stale_clusters()
    assert [r.cluster_id for r in stale] == [unknown.pk, overspending.pk, underspending.pk]

    assert rerender("--limit", "2").splitlines()[-1] == "2 re-renders queued, 1 left for a later run."
    queued = Operation.objects.filter(kind=RERENDER)
    assert sorted(queued.values_list("cluster", flat=True)) == [unknown.pk, overspending.pk]
    assert rerender("--limit", "2").splitlines()[-1] == "0 re-renders queued, 1 left for a later run."  # 2 under way
    for done in stale[:2]:  # as their jobs would
        Cluster.objects.filter(pk=done.cluster_id).update(externaldns_flags=dataclasses.asdict(done.wanted))
    queued.update(state=Operation.State.SUCCEEDED)
    assert rerender("--limit", "2").splitlines() == [
        f"queued  acme/slow0  3600 s -> {stale[2].wanted.interval} s",
        "1 re-render queued, 0 left for a later run.",
    ]
    assert not Operation.objects.filter(cluster=close).exists()


@pytest.mark.integration
def test_a_re_render_leaves_a_cluster_that_is_no_longer_ready_alone(personas):
    (cluster,) = make_clusters(personas.acme, 1, prefix="leaving")
    assert route53_budget.queue_rerender(cluster)
    assert not route53_budget.queue_rerender(cluster)  # a job of its own is queued
    Cluster.objects.filter(pk=cluster.pk).update(state=Cluster.State.DEREGISTERING)
    run_jobs()
    job = Operation.objects.get(kind=RERENDER)
    assert (
        job.state == Operation.State.SUCCEEDED and "the cluster is deregistering now: nothing to re-render" in job.log
    )
    cluster.refresh_from_db()
    assert cluster.state == Cluster.State.DEREGISTERING
