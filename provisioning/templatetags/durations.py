from datetime import UTC

from django import template
from django.utils import timezone
from django.utils.html import format_html

from ..clients.externaldns import short_duration

register = template.Library()


@register.filter
def age(moment):
    """How long ago moment was: 40 s, 12 min, 3 h."""
    return short_duration(max(0, (timezone.now() - moment).total_seconds())) if moment else ""


PRECISIONS = {"day": "%Y-%m-%d", "minute": "%Y-%m-%d %H:%M", "second": "%Y-%m-%d %H:%M:%S"}


@register.filter
def utc_time(moment, precision="minute"):
    """moment in UTC, saying so: <time datetime="2026-12-07T15:45:00Z">2026-12-07 15:45 UTC</time>. Every time
    the pages show is in UTC, like the billing months and GC windows it sits next to; precision: day, minute or
    second."""
    if not moment:
        return ""
    moment = moment.astimezone(UTC)
    machine = moment.isoformat().replace("+00:00", "Z")
    return format_html('<time datetime="{}">{} UTC</time>', machine, moment.strftime(PRECISIONS[precision]))
