"""List pages: search, filters, sorting and pagination from one declarative ListSpec per list.

One view function (`render_list`) and one template (`provisioning/list.html`) serve every list; a list
adds its rows and its empty state as the partials `row` and `empty` of `provisioning/lists/<name>.html`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from django import forms
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

PAGE_SIZE = 25
TEMPLATE = "provisioning/list.html"
FILTER_FORM_ID = "list-filters"


@dataclass(frozen=True, eq=False)
class Filter:
    """A query parameter narrowing the list: one of `choices`, or free text when there are none."""

    name: str
    label: str
    condition: Callable[[str], Q]  # the value → the rows it keeps
    choices: tuple = ()
    blank: str = "Any"  # the label of choosing nothing
    otherwise: Q = Q()  # the rows kept when nothing is chosen

    @classmethod
    def exact(cls, name, label, field, choices=(), **options):
        return cls(name, label, lambda value: Q(**{field: value}), tuple(choices), **options)


@dataclass(frozen=True)
class Column:
    label: str
    sort: str = ""  # the `sort` parameter that orders by this column; empty: not sortable
    order_by: str = ""  # the field it orders by, when not the same as `sort`


@dataclass(frozen=True, eq=False)
class ListSpec:
    name: str  # names the template of its rows, provisioning/lists/<name>.html
    title: str
    queryset: Callable  # user → every row the user may see, with what the rows show joined or prefetched
    columns: tuple[Column, ...]
    search: tuple[str, ...]  # fields that each word of `q` is looked for in (case-insensitive)
    default_sort: str
    filters: tuple[Filter, ...] = ()
    prepare_rows: Callable = list  # the page's rows → the rows to show (Python-side values, no queries)

    def order_by(self, sort):
        """ORM ordering for a `sort` value, with the primary key last so that pages never overlap."""
        descending = sort.startswith("-")
        column = next(c for c in self.columns if c.sort == sort.lstrip("-"))
        sign = "-" if descending else ""
        return [sign + (column.order_by or column.sort), sign + "pk"]


@dataclass(frozen=True)
class Header:
    label: str
    sort: str  # the `sort` value its link asks for; empty: not sortable
    direction: str  # aria-sort of the current ordering: ascending, descending or empty


@cache
def form_class(spec):
    """The form that validates a list's query parameters: q, one field per filter, and sort."""
    search = forms.TextInput(attrs={"type": "search"})
    fields = {"q": forms.CharField(label="Search", required=False, max_length=200, widget=search)}
    for item in spec.filters:
        if item.choices:
            fields[item.name] = forms.ChoiceField(
                label=item.label, required=False, choices=[("", item.blank), *item.choices]
            )
        else:
            fields[item.name] = forms.CharField(label=item.label, required=False, max_length=253)
    sorts = [value for column in spec.columns if column.sort for value in (column.sort, "-" + column.sort)]
    # Hidden, and inside the results, so that each response carries the current sort into the form's next request.
    riding_along = forms.HiddenInput(attrs={"form": FILTER_FORM_ID})
    fields["sort"] = forms.ChoiceField(
        label="Sort", required=False, choices=[(s, s) for s in sorts], widget=riding_along
    )
    return type(f"{spec.name.title()}ListForm", (forms.Form,), fields)


def search_condition(fields, text):
    """Every word appears in at least one of fields."""
    condition = Q()
    for word in text.split():
        condition &= Q.create([(f"{field}__icontains", word) for field in fields], connector=Q.OR)
    return condition


def filter_condition(spec, data):
    condition = search_condition(spec.search, data["q"])
    for item in spec.filters:
        condition &= item.condition(data[item.name]) if data[item.name] else item.otherwise
    return condition


def header(column, sort):
    """A click on a header sorts by its column; a click on the header of the ascending sort reverses it."""
    if not column.sort:
        return Header(column.label, "", "")
    direction = {column.sort: "ascending", f"-{column.sort}": "descending"}.get(sort, "")
    return Header(column.label, f"-{column.sort}" if direction == "ascending" else column.sort, direction)


def render_list(request, spec):
    """The list page, or only its results when htmx asks (the filter form, a sort link, a page link) unless it is
    restoring a page of the browser's history."""
    form = form_class(spec)(request.GET)
    valid = form.is_valid()
    rows = spec.queryset(request.user)
    if valid:
        sort = form.cleaned_data["sort"] or spec.default_sort
        rows = rows.filter(filter_condition(spec, form.cleaned_data)).order_by(*spec.order_by(sort))
    else:
        sort, rows = spec.default_sort, rows.none()
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "spec": spec,
        "form": form,
        "page": page,
        "rows": spec.prepare_rows(page.object_list),
        "headers": [header(column, sort) for column in spec.columns],
        "filtered": not valid or any(value for name, value in form.cleaned_data.items() if name != "sort"),
        "row_template": f"provisioning/lists/{spec.name}.html#row",
        "empty_template": f"provisioning/lists/{spec.name}.html#empty",
        "filter_form_id": FILTER_FORM_ID,
    }
    only_results = request.htmx and not request.htmx.history_restore_request
    response = render(
        request, f"{TEMPLATE}#results" if only_results else TEMPLATE, context, status=200 if valid else 400
    )
    patch_vary_headers(response, ["HX-Request"])  # so that a browser never shows a cached fragment as the page
    return response
