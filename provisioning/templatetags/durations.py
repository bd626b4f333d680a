from django import template
from django.utils import timezone

from ..clients.externaldns import short_duration

register = template.Library()


@register.filter
def age(moment):
    """How long ago moment was: 40 s, 12 min, 3 h."""
    return short_duration(max(0, (timezone.now() - moment).total_seconds())) if moment else ""
