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
from collections.abc import Callable, Iterable, Mapping, Sequence
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


def jsonl_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> WrittenFile:
    payload = jsonl_bytes(rows)
    atomic_write(path, lambda handle: handle.write(payload))
    return WrittenFile(path.name, len(rows), len(payload), hashlib.sha256(payload).hexdigest())


def write_parquet(path: Path, rows: Sequence[Mapping[str, Any]]) -> WrittenFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Columns from every row, not only the first: a `tools` column may start on row 2.
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows])
    atomic_write(path, lambda handle: pq.write_table(table, handle, compression="zstd"))
    return WrittenFile(path.name, len(rows), path.stat().st_size, _sha256(path))


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    payload = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write(path, lambda handle: handle.write(payload))


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
