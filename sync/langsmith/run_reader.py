"""Runs read through LangSmith's v2 run query, or through v1 where a LangSmith lacks v2.

LangSmith Cloud has the v2 query, self-hosted LangSmith from 0.16.0 on. An older self-hosted
one answers the v2 route with 404 (or 405): the reader then says so once, on one line, and
reads this and every later query of the process through v1, which such a LangSmith still has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import langsmith

from tracetune.sync.langsmith.client import LangSmithClients
from tracetune.sync.langsmith.run_query import RunQuery
from tracetune.sync.langsmith.runs_v1 import query_v1
from tracetune.sync.langsmith.runs_v2 import query_v2

logger = logging.getLogger(__name__)

#: What a LangSmith without the v2 route answers it with.
_NO_V2_STATUSES = (404, 405)


class RunReader:
    """Run queries for one LangSmith, through v2 until it turns out to lack it."""

    def __init__(self, clients: LangSmithClients, page_size: int) -> None:
        self.clients = clients
        self.page_size = page_size
        self.uses_v2 = True

    def runs(self, query: RunQuery, fields: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """The query's runs, newest first, read lazily one page at a time."""
        if self.uses_v2:
            try:
                return query_v2(self.clients.api, query, fields, self.page_size)
            except langsmith.APIStatusError as exc:
                if exc.status_code not in _NO_V2_STATUSES:
                    raise
                self.uses_v2 = False
                logger.warning(
                    "notice: LangSmith at %s has no v2 run query (HTTP %s on "
                    "/api/v2/runs/query); reading runs through v1's /runs/query",
                    self.clients.endpoint,
                    exc.status_code,
                )
        return query_v1(self.clients.client, query, fields, self.page_size)
