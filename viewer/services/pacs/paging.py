"""Paging a study query: which page to ask for next, and the studies found so far.

A PACS answers a study query one page at a time (QIDO-RS ``limit``/``offset``; C-FIND paged by the client, see
:meth:`~viewer.services.pacs.dimse.DimseClient.query_studies`). :class:`StudyPager` keeps the filter, the page size and
what came back, so a browser's "More" button only asks :meth:`StudyPager.next_query` and hands the answer to
:meth:`StudyPager.add_page`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from viewer.services.pacs.model import QueryFilter, StudyHit

#: Studies per page unless the user chose otherwise.
DEFAULT_PAGE_SIZE = 50


@dataclass
class StudyPager:
    """The studies of one query, page by page.

    ``query`` holds the filter (its ``limit``/``offset`` are replaced by each page's); ``page_size`` is the number of
    studies asked for per page. ``exhausted`` becomes True once a page came back short (nothing more to ask for).
    """

    query: QueryFilter
    page_size: int = DEFAULT_PAGE_SIZE
    hits: list[StudyHit] = field(default_factory=list)
    pages: int = 0
    exhausted: bool = False

    def __post_init__(self) -> None:
        self.page_size = max(1, int(self.page_size))

    @property
    def has_more(self) -> bool:
        """Whether asking for another page may find more studies (a full last page may be followed by none)."""
        return not self.exhausted

    def next_query(self) -> QueryFilter:
        """The filter for the next page: ``page_size`` studies after the ones already found."""
        return replace(self.query, limit=self.page_size, offset=self.pages * self.page_size)

    def add_page(self, page: list[StudyHit]) -> list[StudyHit]:
        """Take the answer to :meth:`next_query`; returns the studies not seen before, in the PACS's order.

        The offset counts pages asked for, not studies kept: a study stored between two pages can shift the PACS's
        list by one, and the study then seen twice is dropped here rather than shown twice.
        """
        self.pages += 1
        self.exhausted = len(page) < self.page_size
        known = {hit.study_uid for hit in self.hits}
        new = []
        for hit in page:
            if hit.study_uid not in known:
                known.add(hit.study_uid)
                new.append(hit)
        self.hits.extend(new)
        return new
