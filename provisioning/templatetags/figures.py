from django import template

register = template.Library()


@register.filter
def percent(fraction):
    """0.834 -> '83 %'."""
    return f"{fraction * 100:.0f} %"
