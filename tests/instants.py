"""The fixed instants that the date-sensitive tests (GC, billing, certificate renewals) run at.

Adding an instant is one line in INSTANTS; the `instant` fixture (tests/conftest.py) runs a test once per
instant. Each states by hand when its month starts and ends (UTC), so that tests check the code's calendar
arithmetic against facts rather than against itself.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import time_machine


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@dataclass(frozen=True)
class Instant:
    name: str
    at: datetime  # UTC
    month: datetime  # when the month holding `at` began (UTC)
    next_month: datetime  # when the next one begins (UTC)
    time_zone: str = "UTC"  # settings.TIME_ZONE during the test

    def __str__(self):
        return self.name

    def travel(self, moment=None):
        """The clock at `moment` (default: this instant), running on from there.

        timezone.now(), datetime.now() and time.time() follow it; time.monotonic() does not, and neither do the
        servers the tests start (moto, OpenBao, Redis, the Kubernetes stand-ins) nor OpenSSL's certificate checks.
        """
        return time_machine.travel(moment or self.at, tick=True)


INSTANTS = (
    Instant("first-minutes-of-month", utc(2026, 12, 1, 0, 3), utc(2026, 12, 1), utc(2027, 1, 1)),
    Instant("last-hour-of-month", utc(2026, 11, 30, 23, 20), utc(2026, 11, 1), utc(2026, 12, 1)),  # in the final window
    Instant("new-year", utc(2027, 1, 1, 0, 3), utc(2027, 1, 1), utc(2027, 2, 1)),
    Instant("feb-28-leap", utc(2028, 2, 28, 23, 20), utc(2028, 2, 1), utc(2028, 3, 1)),  # a day before the window
    Instant("feb-29-leap", utc(2028, 2, 29, 23, 20), utc(2028, 2, 1), utc(2028, 3, 1)),
    # 03:30 CEST, half an hour after Berlin's clocks went from 02:00 to 03:00: 11 h ago was 15:30 CET, 12 h by the wall.
    Instant("dst-change-europe-berlin", utc(2026, 3, 29, 1, 30), utc(2026, 3, 1), utc(2026, 4, 1), "Europe/Berlin"),
    # 01:30 EST, the second 01:30 of the night New York's clocks went from 02:00 back to 01:00: 11 h ago was 15:30 EDT,
    # 10 h by the wall.
    Instant(
        "dst-change-america-new-york", utc(2026, 11, 1, 6, 30), utc(2026, 11, 1), utc(2026, 12, 1), "America/New_York"
    ),
)
