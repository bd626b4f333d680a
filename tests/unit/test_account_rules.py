"""The ORGDNS_AWS_ACCOUNTS setting, and how the account with the most headroom is chosen."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from orgdns_site.environment import aws_accounts
from provisioning.rules import budget

SECOND_ROLE = "arn:aws:iam::222222222222:role/orgdns-provisioner"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("[{", "ORGDNS_AWS_ACCOUNTS is not valid JSON"),
        ("[]", "must be a JSON list of accounts, at least one"),
        ('[{"name": "eu", "zone_quota": 0}]', "entry 1 ('eu'): zone_quota must be more than 0, not 0"),
        ('[{"name": "eu", "rate": "fast"}]', "entry 1 ('eu'): rate must be a number, not 'fast'"),
        ('[{"name": "eu", "iam_user_quota": 1.5}]', "entry 1 ('eu'): iam_user_quota must be a whole number, not 1.5"),
        (
            '[{"name": "main"}, {"name": "eu", "role_arn": "orgdns"}]',
            "entry 2 ('eu'): role_arn must be an IAM role ARN",
        ),
        ('[{"name": "Main"}]', "entry 1 ('Main'): name must be 1 to 32 lowercase letters"),
        ('[{"role_arn": ""}]', "entry 1: name must be a string, not None"),
        ('[{"name": "eu", "zones": 5}]', "entry 1 ('eu'): unknown field zones"),
        ('[{"name": "a"}, {"name": "b"}]', "role_arn must differ between accounts; repeated: the main account"),
        (
            f'[{{"name": "a"}}, {{"name": "a", "role_arn": "{SECOND_ROLE}"}}]',
            "name must differ between accounts; repeated: a",
        ),
        (f'[{{"name": "main", "role_arn": "{SECOND_ROLE}"}}]', "the name main is the main account's"),
        ('["eu"]', "entry 1 must be an object"),
    ],
)
def test_a_bad_accounts_setting_is_refused_naming_the_entry(value, said):
    with pytest.raises(ImproperlyConfigured) as refused:
        aws_accounts(value)
    assert said in str(refused.value)


def test_headroom_is_what_is_left_of_the_tightest_limit_and_none_at_a_quota():
    assert budget.placement_headroom(0, 500, 0, 5000, 0, 100) == 1
    assert budget.placement_headroom(250, 500, 250, 5000, 10, 100) == pytest.approx(0.5)
    assert budget.placement_headroom(10, 500, 10, 5000, 90, 100) == pytest.approx(0.1)
    assert budget.placement_headroom(10, 500, 10, 5000, 150, 100) == pytest.approx(-0.5)  # over its rate: still room
    assert budget.placement_headroom(500, 500, 10, 5000, 0, 100) is None
    assert budget.placement_headroom(10, 500, 5000, 5000, 0, 100) is None


def test_the_account_with_the_most_headroom_is_chosen_the_first_of_equals():
    assert budget.most_headroom([0.2, 0.5, None]) == 1
    assert budget.most_headroom([0.5, 0.5, 0.5]) == 0
    assert budget.most_headroom([None, -0.5, -0.2]) == 2  # over their rate, but with quota left
    assert budget.most_headroom([None, None]) is None
