"""Path parameters, constrained so that nothing a database cannot compare (NUL, out-of-range ids) reaches a query."""

from typing import Annotated

from ninja import Path, Query

OrgName = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,63}$", description="The organization's name.")]
Username = Annotated[str, Path(pattern=r"^[^\x00/]{1,150}$")]
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


def text_query(description=""):
    """An optional query parameter of text (empty: not given)."""
    return Query("", pattern=r"^[^\x00]*$", max_length=253, description=description)
