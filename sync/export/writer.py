"""Export files on disk: atomic writes, the deterministic split, the export folder.

Every file is written to a temporary name and renamed; the whole export is built in a staging
folder that is renamed into place only once the manifest is written. A killed export therefore
leaves no half file where readers look, and a retried one rebuilds the same files from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

Split = Literal["train", "validation"]
#: Which fine-tuning format a file holds, and of what: the two halves of its name.
Family = Literal["openai", "trl"]
FileKind = Literal["sft", "preference"]
STAGING_SUFFIX = ".partial"


def training_file_name(family: Family, kind: FileKind, split: Split, suffix: str = "jsonl") -> str:
    """The one naming rule of export files (`openai_sft.train.jsonl`); fine-tuning reads it."""
    return f"{family}_{kind}.{split}.{suffix}"


def split_of(group: str, validation_fraction: float, seed: str) -> Split:
    """Hash-based split of a group: the same group lands in the same split on every run."""
    if validation_fraction <= 0:
        return "train"
    digest = hashlib.sha256(f"{seed}\0{group}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if position < validation_fraction else "train"


@dataclass(frozen=True)
class WrittenFile:
    name: str
    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class JsonlWriter:
    """One JSONL file written a row at a time (size and SHA-256 counted as it goes), under a
    temporary name until `close` renames it into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._handle: IO[bytes] = self._temporary.open("wb")
        self._digest = hashlib.sha256()
        self.rows = 0
        self.bytes = 0

    def write(self, row: Mapping[str, Any]) -> str:
        """Append `row`; returns its line (without the newline), e.g. for validation."""
        line = json.dumps(row, ensure_ascii=False)
        payload = (line + "\n").encode("utf-8")
        self._handle.write(payload)
        self._digest.update(payload)
        self.rows += 1
        self.bytes += len(payload)
        return line

    def close(self) -> WrittenFile:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._temporary, self.path)
        return WrittenFile(self.path.name, self.rows, self.bytes, self._digest.hexdigest())

    def discard(self) -> None:
        self._handle.close()
        self._temporary.unlink(missing_ok=True)


#: Rows per Parquet row group: a file up to this size is one group, as one table write
#: makes it; a longer one is written a group at a time, never all in memory.
ROWS_PER_GROUP = 10_000


def _jsonl_chunks(path: Path, size: int) -> Iterator[list[dict[str, Any]]]:
    with path.open("rb") as handle:
        chunk: list[dict[str, Any]] = []
        for line in handle:
            chunk.append(json.loads(line))
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _complete(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every column of the chunk: a `tools` column may start on row 2."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key) for key in columns} for row in rows]


def write_parquet_from_jsonl(
    path: Path, source: Path, rows_per_group: int = ROWS_PER_GROUP
) -> WrittenFile:
    """The rows of a JSONL file as Parquet, `rows_per_group` rows in memory at a time.

    Read twice: once for the columns and their types (each group's inferred, unified: a
    column or struct field that starts late is there from the first row), once to write.
    Up to `rows_per_group` rows, the file is one group: the bytes of one table written at
    once.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [
        pa.Table.from_pylist(_complete(chunk)).schema
        for chunk in _jsonl_chunks(source, rows_per_group)
    ]
    schema = schemas[0] if len(schemas) == 1 else pa.unify_schemas(schemas)
    rows = 0

    def write(handle: IO[bytes]) -> None:
        nonlocal rows
        with pq.ParquetWriter(handle, schema, compression="zstd") as writer:
            for chunk in _jsonl_chunks(source, rows_per_group):
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                rows += len(chunk)

    atomic_write(path, write)
    return WrittenFile(path.name, rows, path.stat().st_size, _sha256(path))


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    payload = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write(path, lambda handle: handle.write(payload))


def write_json_with_list(
    path: Path, document: Mapping[str, Any], name: str, items: Iterable[Mapping[str, Any]]
) -> None:
    """`write_json` of `document` with `name` added last, a list written item by item:
    the same bytes, without the list in memory (a manifest's lineage has a row per
    example)."""
    head = json.dumps(document, indent=2, ensure_ascii=False)
    assert head.endswith("\n}") and name not in document

    def write(handle: IO[bytes]) -> None:
        handle.write(f"{head[:-2]},\n  {json.dumps(name)}: [".encode())
        separator = "\n"
        for item in items:
            nested = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n    ")
            handle.write(f"{separator}    {nested}".encode())
            separator = ",\n"
        handle.write(("]" if separator == "\n" else "\n  ]").encode())
        handle.write(b"\n}\n")

    atomic_write(path, write)


class ExportFolder:
    """`<root>/<export id>`, built in `<export id>.partial` and renamed into place on commit."""

    def __init__(self, root: Path, export_id: str) -> None:
        self.final = root / export_id
        self.staging = root / f"{export_id}{STAGING_SUFFIX}"

    def open(self) -> Path:
        """A fresh staging folder; leftovers of a killed attempt are discarded first."""
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        return self.staging

    def commit(self) -> Path:
        """Rename the finished staging folder into place, replacing an earlier attempt's."""
        if self.final.exists():
            previous = self.final.with_name(f"{self.final.name}.replaced")
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(self.final, previous)
            os.replace(self.staging, self.final)
            shutil.rmtree(previous)
        else:
            os.replace(self.staging, self.final)
        return self.final
