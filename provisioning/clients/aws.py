"""Route53, IAM and STS, through boto3: every call counted, rate limited (Route53) and retried when transient; the
credentials of roles assumed in other accounts, cached."""

import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import botocore.config
import botocore.exceptions
from boto3.session import Session

from .errors import ProviderError
from .retry import CallStats, RetryPolicy, call_with_retry

THROTTLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}
TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "ServiceFailure",
}
CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)
# Route53 limits for one ChangeResourceRecordSets request.
MAX_CHANGE_RECORDS = 1000
MAX_CHANGE_CHARS = 32000

MAX_LIST_RECORDS = 300  # record sets per ListResourceRecordSets answer


@dataclass(frozen=True)
class RecordPosition:
    """Where a ListResourceRecordSets page starts: Route53's StartRecordName, StartRecordType, StartRecordIdentifier."""

    name: str
    type: str
    identifier: str | None = None


# Route53's record sets and changes, as boto3 gives and takes them.
RecordSet = dict[str, Any]
Change = dict[str, Any]
Credentials = dict[str, str]  # boto3 client arguments: aws_access_key_id, aws_secret_access_key, aws_session_token


class Limiter(Protocol):
    def acquire(self) -> None: ...


def error_code(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


def is_transient(exc: Exception) -> bool:
    return isinstance(exc, CONNECTION_ERRORS) or error_code(exc) in TRANSIENT_CODES


class AwsService:
    """One boto3 client of a boto3.Session, with our retries in place of botocore's."""

    service = ""
    label = ""

    def __init__(
        self,
        session: Session,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        retry: RetryPolicy | None = None,
        stats: CallStats | None = None,
        limiter: Limiter | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.stats = stats if stats is not None else CallStats()
        config = botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
        self.client = session.client(
            self.service, endpoint_url=endpoint_url or None, region_name=region, config=config, **(credentials or {})
        )
        events = self.client.meta.events
        if limiter is not None:
            events.register(f"before-send.{self.service}", lambda **_: limiter.acquire())
        events.register(f"before-send.{self.service}", self._count)

    def _count(self, event_name: str, **_: object) -> None:
        self.stats.count(self.label, event_name.rsplit(".", 1)[-1])

    def call(self, operation: str, retry_codes: Collection[str] = (), **params: Any) -> Any:
        method = getattr(self.client, operation)

        def transient(exc: Exception) -> bool:
            return is_transient(exc) or error_code(exc) in retry_codes

        def attempt() -> Any:
            try:
                return method(**params)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in THROTTLE_CODES:
                    self.stats.throttled(self.label, exc.operation_name)
                raise

        try:
            return call_with_retry(attempt, policy=self.retry, is_transient=transient, what=f"AWS {self.label}")
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise ProviderError(
                f"{self.label} {exc.operation_name} failed: {error.get('Code')}: {error.get('Message')}",
                service=self.label,
                permanent=not transient(exc),
                code=error.get("Code", ""),
            ) from None
        except CONNECTION_ERRORS as exc:
            raise ProviderError(
                f"{self.label} is unreachable ({type(exc).__name__}); will retry", service=self.label, permanent=False
            ) from None


class Route53(AwsService):
    service = "route53"
    label = "route53"

    def find_zone(self, name: str) -> dict[str, Any] | None:
        """The public zone named `name` (None if there is none): its id, CallerReference and tags."""
        fqdn = name.rstrip(".") + "."
        found = self.call("list_hosted_zones_by_name", DNSName=fqdn, MaxItems="10")
        for zone in found["HostedZones"]:
            if zone["Name"] == fqdn and not zone.get("Config", {}).get("PrivateZone"):
                zone_id = zone["Id"].split("/")[-1]
                return {"id": zone_id, "caller_reference": zone["CallerReference"], "tags": self.tags(zone_id)}
        return None

    def zones(self) -> Iterator[dict[str, Any]]:
        """Every hosted zone of the account (id, name, CallerReference, private), following every page."""
        params: dict[str, str] = {"MaxItems": "100"}
        while True:
            page = self.call("list_hosted_zones", **params)
            for zone in page["HostedZones"]:
                yield {
                    "id": zone["Id"].split("/")[-1],
                    "name": zone["Name"],
                    "caller_reference": zone["CallerReference"],
                    "private": zone.get("Config", {}).get("PrivateZone", False),
                }
            if not page.get("IsTruncated"):
                return
            params["Marker"] = page["NextMarker"]

    def tags(self, zone_id: str) -> dict[str, str]:
        found = self.call("list_tags_for_resource", ResourceType="hostedzone", ResourceId=zone_id)
        return {t["Key"]: t["Value"] for t in found["ResourceTagSet"].get("Tags", [])}

    def create_zone(self, name: str, caller_reference: str, tags: dict[str, str]) -> tuple[str, list[str]]:
        created = self.call(
            "create_hosted_zone",
            Name=name,
            CallerReference=caller_reference,
            HostedZoneConfig={"Comment": "managed by orgdns", "PrivateZone": False},
        )
        zone_id = created["HostedZone"]["Id"].split("/")[-1]
        self.tag_zone(zone_id, tags)
        return zone_id, created["DelegationSet"]["NameServers"]

    def tag_zone(self, zone_id: str, tags: dict[str, str]) -> None:
        self.call(
            "change_tags_for_resource",
            ResourceType="hostedzone",
            ResourceId=zone_id,
            AddTags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def name_servers(self, zone_id: str) -> list[str]:
        return self.call("get_hosted_zone", Id=zone_id)["DelegationSet"]["NameServers"]

    def record_sets_named(self, zone_id: str, name: str) -> list[RecordSet]:
        """Every record set (of any type) named exactly `name` in the zone."""
        fqdn = name.rstrip(".") + "."
        page = self.call("list_resource_record_sets", HostedZoneId=zone_id, StartRecordName=fqdn, MaxItems="100")
        return [record for record in page["ResourceRecordSets"] if record["Name"] == fqdn]

    def delegation(self, parent_zone_id: str, name: str) -> RecordSet | None:
        """The NS record set for `name` in the parent zone, or None."""
        return next((r for r in self.record_sets_named(parent_zone_id, name) if r["Type"] == "NS"), None)

    def create_delegation(
        self,
        parent_zone_id: str,
        name: str,
        name_servers: list[str],
        replacing: RecordSet | None = None,
        ttl: int = 172800,
    ) -> None:
        """Create the NS record set for `name`, in one change with deleting `replacing` (an NS record set as listed).

        CREATE and DELETE fail if the parent zone changed since it was read, so nobody else's record is overwritten.
        """
        changes = [{"Action": "DELETE", "ResourceRecordSet": replacing}] if replacing else []
        self.change(parent_zone_id, [*changes, _change("CREATE", name, "NS", name_servers, ttl)])

    def delete_record_set(self, zone_id: str, record_set: RecordSet) -> None:
        """Delete exactly this record set (as listed): fails if it changed meanwhile."""
        self.change(zone_id, [{"Action": "DELETE", "ResourceRecordSet": record_set}])

    def record_sets(self, zone_id: str) -> Iterator[RecordSet]:
        """Every record set in the zone, following every page."""
        start: RecordPosition | None = None
        while True:
            record_sets, start = self.record_set_page(zone_id, start, MAX_LIST_RECORDS)
            yield from record_sets
            if start is None:
                return

    def record_set_page(
        self, zone_id: str, start: RecordPosition | None, max_items: int
    ) -> tuple[list[RecordSet], RecordPosition | None]:
        """One ListResourceRecordSets call: up to max_items record sets from `start` on (the zone's first if None),
        in Route53's order, and the position of the next one (None after the last)."""
        params: dict[str, str] = {"HostedZoneId": zone_id, "MaxItems": str(max_items)}
        if start is not None:
            params["StartRecordName"], params["StartRecordType"] = start.name, start.type
            if start.identifier:
                params["StartRecordIdentifier"] = start.identifier
        page = self.call("list_resource_record_sets", **params)
        if not page.get("IsTruncated"):
            return page["ResourceRecordSets"], None
        following = RecordPosition(page["NextRecordName"], page["NextRecordType"], page.get("NextRecordIdentifier"))
        return page["ResourceRecordSets"], following

    def delete_record_sets(self, zone_id: str, record_sets: Iterable[RecordSet]) -> int:
        """Delete these record sets, in as few requests as Route53's limits allow. Returns the request count."""
        requests = 0
        for batch in change_batches([{"Action": "DELETE", "ResourceRecordSet": r} for r in record_sets]):
            self.change(zone_id, batch)
            requests += 1
        return requests

    def change(self, zone_id: str, changes: list[Change]) -> None:
        self.call("change_resource_record_sets", HostedZoneId=zone_id, ChangeBatch={"Changes": changes})

    def delete_zone(self, zone_id: str) -> None:
        try:
            self.call("delete_hosted_zone", Id=zone_id)
        except ProviderError as exc:
            if exc.code != "NoSuchHostedZone":
                raise


def _change(action: str, name: str, rtype: str, values: Iterable[str], ttl: int) -> Change:
    return {
        "Action": action,
        "ResourceRecordSet": {
            "Name": name,
            "Type": rtype,
            "TTL": ttl,
            "ResourceRecords": [{"Value": v} for v in values],
        },
    }


def change_batches(changes: Iterable[Change]) -> Iterator[list[Change]]:
    """Split changes into batches within Route53's per-request limits (an UPSERT counts twice)."""
    batch: list[Change] = []
    records = chars = 0
    for change in changes:
        values = [r["Value"] for r in change["ResourceRecordSet"].get("ResourceRecords", [])] or [""]
        weight = 2 if change["Action"] == "UPSERT" else 1
        n_records, n_chars = weight * len(values), weight * sum(len(v) for v in values)
        if batch and (records + n_records > MAX_CHANGE_RECORDS or chars + n_chars > MAX_CHANGE_CHARS):
            yield batch
            batch, records, chars = [], 0, 0
        batch.append(change)
        records += n_records
        chars += n_chars
    if batch:
        yield batch


class IAM(AwsService):
    service = "iam"
    label = "iam"

    def user_exists(self, user_name: str) -> bool:
        try:
            self.call("get_user", UserName=user_name)
            return True
        except ProviderError as exc:
            if exc.code == "NoSuchEntity":
                return False
            raise

    def users(self, name_prefix: str) -> Iterator[dict[str, Any]]:
        """The account's IAM users whose name starts with name_prefix: name and creation time, following every page."""
        params: dict[str, str] = {}
        while True:
            page = self.call("list_users", **params)
            yield from (
                {"name": u["UserName"], "created_at": u["CreateDate"]}
                for u in page["Users"]
                if u["UserName"].startswith(name_prefix)
            )
            if not page.get("IsTruncated"):
                return
            params["Marker"] = page["Marker"]

    def user_tags(self, user_name: str) -> dict[str, str] | None:
        """The user's tags, or None if there is no such user."""
        try:
            found = self.call("list_user_tags", UserName=user_name)
        except ProviderError as exc:
            if exc.code == "NoSuchEntity":
                return None
            raise
        return {t["Key"]: t["Value"] for t in found["Tags"]}

    def create_user(self, user_name: str, tags: dict[str, str], permissions_boundary: str = "") -> None:
        """Create the user with these tags and, given its ARN, a permissions boundary (the most it can ever be allowed)."""
        boundary = {"PermissionsBoundary": permissions_boundary} if permissions_boundary else {}
        self.call("create_user", UserName=user_name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()], **boundary)

    def tag_user(self, user_name: str, tags: dict[str, str]) -> None:
        self.call("tag_user", UserName=user_name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def put_user_policy(self, user_name: str, policy_name: str, document: dict[str, Any]) -> None:
        self.call("put_user_policy", UserName=user_name, PolicyName=policy_name, PolicyDocument=json.dumps(document))

    def access_key_ids(self, user_name: str) -> list[str]:
        return [k["AccessKeyId"] for k in self.call("list_access_keys", UserName=user_name)["AccessKeyMetadata"]]

    def create_access_key(self, user_name: str) -> tuple[str, str]:
        key = self.call("create_access_key", UserName=user_name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def delete_access_key(self, user_name: str, access_key_id: str) -> None:
        self.call("delete_access_key", UserName=user_name, AccessKeyId=access_key_id)

    def delete_user(self, user_name: str) -> None:
        """Delete a user the way AWS requires: access keys, inline policies, then the user."""
        if not self.user_exists(user_name):
            return
        for key_id in self.access_key_ids(user_name):
            self.delete_access_key(user_name, key_id)
        for policy in self.call("list_user_policies", UserName=user_name)["PolicyNames"]:
            self.call("delete_user_policy", UserName=user_name, PolicyName=policy)
        self.call("delete_user", UserName=user_name)


class STS(AwsService):
    service = "sts"
    label = "sts"

    def wait_until_valid(self) -> str:
        """A new access key takes a few seconds to work everywhere: retry until AWS accepts it."""
        return self.call("get_caller_identity", retry_codes=("InvalidClientTokenId",))["Arn"]

    def assume_role(self, role_arn: str, session_name: str, seconds: int) -> tuple[Credentials, datetime]:
        """Credentials of the role (as boto3 client arguments) and when they expire (an aware datetime)."""
        found = self.call("assume_role", RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=seconds)
        credentials = found["Credentials"]
        return {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }, credentials["Expiration"]


class RoleCredentials:
    """Credentials of the roles orgdns assumes in other accounts, kept until `margin` before they expire, so that a
    call never starts with credentials about to lapse. One per process; safe across threads."""

    def __init__(
        self, margin: timedelta = timedelta(minutes=5), clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._margin = margin
        self._clock = clock
        self._cached: dict[str, tuple[Credentials, datetime]] = {}
        self._lock = threading.Lock()

    def get(self, role_arn: str, assume: Callable[[str], tuple[Credentials, datetime]]) -> Credentials:
        """The role's credentials: cached ones, or those of `assume(role_arn)` -> (credentials, expiration)."""
        with self._lock:
            cached = self._cached.get(role_arn)
            if cached is None or cached[1] - self._margin <= self._clock():
                cached = self._cached[role_arn] = assume(role_arn)
            return cached[0]


def zone_scoped_policy(zone_id: str) -> dict[str, Any]:
    """Only this zone's records; ListHostedZones cannot be scoped to a zone."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ChangeAndReadThisZone",
                "Effect": "Allow",
                "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                "Resource": [f"arn:aws:route53:::hostedzone/{zone_id}"],
            },
            {
                "Sid": "FindZones",
                "Effect": "Allow",
                "Action": ["route53:ListHostedZones"],
                "Resource": ["*"],
            },
        ],
    }
