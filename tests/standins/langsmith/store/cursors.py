"""Pages over runs sorted by `(start_time, id)`: opaque cursors and start-time windows by bisect."""

from __future__ import annotations

import base64
import bisect
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from standins.langsmith.wire import ApiError, api_time, dumps, loads

SortKey = tuple[str, str]
#: Sorts after every run id at the same start time, to make an upper bound inclusive.
_AFTER_EVERY_ID = "\uffff"


def start_bound(moment: datetime | None, *, inclusive: bool) -> SortKey | None:
    """The sort key below which runs start before `moment` (or at it, unless `inclusive`)."""
    if moment is None:
        return None
    return (api_time(moment) or "", _AFTER_EVERY_ID if inclusive else "")


def window_keys(
    keys: Sequence[SortKey],
    after: SortKey | None,
    descending: bool,
    low: SortKey | None = None,
    high: SortKey | None = None,
) -> Iterator[SortKey]:
    """Keys in `[low, high)` strictly after the cursor `after` in page order, without copying."""
    first = 0 if low is None else bisect.bisect_left(keys, low)
    stop = len(keys) if high is None else bisect.bisect_left(keys, high)
    if descending:
        if after is not None:
            stop = min(stop, bisect.bisect_left(keys, after))
        for index in range(stop - 1, first - 1, -1):
            yield keys[index]
    else:
        if after is not None:
            first = max(first, bisect.bisect_right(keys, after))
        for index in range(first, stop):
            yield keys[index]


def encode_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(dumps(list(key))).decode()


def decode_cursor(cursor: Any) -> SortKey:
    try:
        start, run_id = loads(base64.urlsafe_b64decode(str(cursor).encode()))
        return str(start), str(run_id)
    except (ValueError, TypeError, ApiError) as exc:
        raise ApiError(400, f"Invalid cursor: {cursor!r}") from exc
