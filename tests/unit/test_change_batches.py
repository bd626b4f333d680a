"""Route53 changes are sent in batches within its per-request limits, in their order."""

from hypothesis import given
from hypothesis import strategies as st

from provisioning.clients.aws import MAX_CHANGE_CHARS, MAX_CHANGE_RECORDS, change_batches


def change(action, *values):
    records = [{"Value": v} for v in values]
    return {
        "Action": action,
        "ResourceRecordSet": {"Name": "a.acme.orgdns.test.", "Type": "TXT", "ResourceRecords": records},
    }


def weight(batch):
    """(records, characters) of a batch as Route53 counts them: an UPSERT counts twice."""
    records = chars = 0
    for c in batch:
        values = [r["Value"] for r in c["ResourceRecordSet"]["ResourceRecords"]] or [""]
        times = 2 if c["Action"] == "UPSERT" else 1
        records += times * len(values)
        chars += times * sum(len(v) for v in values)
    return records, chars


def test_changes_within_the_limits_go_in_one_batch():
    changes = [change("CREATE", "x")] * MAX_CHANGE_RECORDS
    assert list(change_batches(changes)) == [changes]
    assert list(change_batches([])) == []


def test_an_upsert_counts_twice():
    changes = [change("UPSERT", "x")] * (MAX_CHANGE_RECORDS // 2 + 1)
    assert [len(b) for b in change_batches(changes)] == [MAX_CHANGE_RECORDS // 2, 1]


def test_the_characters_are_a_limit_too():
    changes = [change("DELETE", "v" * 4000)] * 9  # 36,000 characters, 9 records
    assert [len(b) for b in change_batches(changes)] == [8, 1]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["CREATE", "DELETE", "UPSERT"]),
            st.lists(st.text(alphabet="ab", min_size=0, max_size=3000), min_size=1, max_size=100),
        ),
        max_size=60,
    )
)
def test_batches_keep_every_change_in_order_and_each_is_within_the_limits(shapes):
    changes = [change(action, *values) for action, values in shapes]
    batches = list(change_batches(changes))
    assert [c for b in batches for c in b] == changes
    for batch in batches:
        records, chars = weight(batch)
        assert batch and (len(batch) == 1 or (records <= MAX_CHANGE_RECORDS and chars <= MAX_CHANGE_CHARS))
