"""What an export puts aside until the end, kept on disk instead of in memory.

A streaming export writes each example as its task is read, but a few things can only be
finished once every task was seen: a rejected answer's pair needs the better answer to the
same prompt (which may come from a later task), preference files interleave those pairs in
task-id order, and the manifest lists the lineage of each set after the previous set's. Those
go to a spill file in the export's staging folder (pickled objects, written and read back by
the same run only) and are read back in order, or by position.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Generic, TypeVar

T = TypeVar("T")


class Spill(Generic[T]):
    """Objects appended to one file, read back in the order they were written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] = path.open("w+b")
        self.count = 0

    def append(self, item: T) -> int:
        """Keep `item`; returns its position, for `at`."""
        position = self._handle.seek(0, 2)
        pickle.dump(item, self._handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1
        return position

    def at(self, position: int) -> T:
        self._handle.seek(position)
        item: T = pickle.load(self._handle)
        return item

    def __iter__(self) -> Iterator[T]:
        """Every item in order (the file is read as it goes; appending meanwhile is not)."""
        self._handle.flush()
        with self.path.open("rb") as reader:
            for _ in range(self.count):
                yield pickle.load(reader)

    def close(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)
