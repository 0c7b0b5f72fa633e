"""A cap on the pages of one listing: an endpoint whose next token never ends cannot page us forever.

botocore stops a listing only when the same token comes back twice in a row; a token that changes on
every page (a broken endpoint, a proxy in the way) pages for ever. ``PaginationConfig``'s ``MaxItems``
is no cap for that: it counts items, so empty pages never reach it, and it ends the listing silently
with a resume token, which would pass a cut-off listing as complete. So every page is counted:
``add_page_cap`` gives each client of the session (botocore's ``creating-client-class`` event) a
``get_paginator`` whose page iterator stops with ``TooManyPages`` past ``MAX_PAGES``; ``pages`` does
the same for a listing botocore has no paginator for.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from botocore.exceptions import PaginationError
from botocore.paginate import PageIterator

# Far above any real account: 10,000 pages are 500,000 parameters at DescribeParameters' 50 a page,
# where SSM allows 100,000 advanced parameters per account and Region.
MAX_PAGES = 10_000


class TooManyPages(PaginationError):
    """A PaginationError (a BotoCoreError): handled wherever botocore's own pagination errors are."""

    fmt = ("{service} {operation}: the listing went past {pages:,} pages, each with a new next token; "
           "stopped there (no real account has that many). Is the endpoint an AWS API?")


def add_page_cap(base_classes: list, **_: Any) -> None:
    """``creating-client-class`` handler: every client built afterwards caps its paginators."""
    base_classes.insert(0, _CappedPaginators)


class _CappedPaginators:
    def get_paginator(self, operation_name: str) -> Any:
        paginator = super().get_paginator(operation_name)  # type: ignore[misc]
        service = self.meta.service_model.service_name  # type: ignore[attr-defined]
        operation = self.meta.method_to_api_mapping.get(operation_name, operation_name)  # type: ignore[attr-defined]
        paginator.PAGE_ITERATOR_CLS = lambda *args: _CappedPageIterator(service, operation, *args)
        return paginator


class _CappedPageIterator(PageIterator):
    def __init__(self, service: str, operation: str, *args: Any) -> None:
        super().__init__(*args)
        self._service, self._operation, self._pages = service, operation, 0

    def __iter__(self) -> Iterator[Any]:
        self._pages = 0
        yield from super().__iter__()

    def _make_request(self, current_kwargs: dict) -> Any:
        self._pages += 1
        if self._pages > MAX_PAGES:
            raise TooManyPages(service=self._service, operation=self._operation, pages=MAX_PAGES)
        return super()._make_request(current_kwargs)


def pages(call: Callable[..., dict], service: str, operation: str, token: str = "NextToken",
          **kwargs: Any) -> Iterator[dict]:
    """``call(**kwargs)`` page after page while a reply has a ``token``, at most ``MAX_PAGES`` pages."""
    for count in range(MAX_PAGES + 1):
        if count == MAX_PAGES:
            raise TooManyPages(service=service, operation=operation, pages=MAX_PAGES)
        page = call(**kwargs)
        yield page
        if not page.get(token):
            return
        kwargs = {**kwargs, token: page[token]}
