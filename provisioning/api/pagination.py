"""Lists a page at a time: ?page=N&page_size=M; each page says how many rows there are and links the next one."""

from functools import cache

from django.core.paginator import Paginator
from ninja import Field, Schema
from pydantic import create_model

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


class PageParams(Schema):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


@cache
def page_of(item):
    """The schema of a page of `item`s."""
    return create_model(
        f"{item.__name__}Page",
        __base__=Schema,
        count=(int, Field(description="Rows in every page together.")),
        page=(int, ...),
        pages=(int, ...),
        next=(str | None, Field(description="The URL of the next page; null on the last one.")),
        previous=(str | None, ...),
        items=(list[item], ...),
    )


def paginate(request, rows, params, prepare=list):
    """One page of rows (a queryset, or a list) as page_of() describes it; a page past the end is empty.
    prepare: the page's rows → what to show (Python-side, no queries per row)."""
    paginator = Paginator(rows, params.page_size, allow_empty_first_page=True)
    number = params.page
    items = prepare(paginator.page(number).object_list) if number <= paginator.num_pages else []
    return {
        "count": paginator.count,
        "page": number,
        "pages": paginator.num_pages,
        "next": _url(request, number + 1) if number < paginator.num_pages else None,
        "previous": _url(request, min(number - 1, paginator.num_pages)) if number > 1 else None,
        "items": items,
    }


def _url(request, number):
    query = request.GET.copy()
    query["page"] = str(number)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
