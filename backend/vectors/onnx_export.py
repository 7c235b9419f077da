"""The ONNX file of a sentence-transformers model, built here from its installed files.

Nothing is downloaded: the model folder (the bundled MiniLM, or any local mean-pooling
sentence-transformers folder) is traced once by `torch.onnx` into one graph that ends in the
normalised sentence vector, so the runtime that serves it needs no PyTorch. `int8` adds a
dynamically quantised copy (weights per channel, activations per batch; the attention-score
products stay float, they are what quantisation hurts most). Files are cached under
`<cache dir>/<model digest>/` and built under a file lock, so several gunicorn workers starting
together build them once; a changed model folder has another digest and is built anew.

`python -m tracetune.backend.vectors.onnx_export` builds them ahead of time (`make install`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tracetune.sync.errors import ConfigurationError

Precision = Literal["fp32", "int8"]

#: Bumped when the exported graph changes, so cached files from older code are not reused.
EXPORT_FORMAT = 1
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tracetune" / "models"


@dataclass(frozen=True)
class ModelFolder:
    """What the export needs to know about a sentence-transformers folder."""

    path: Path
    max_seq_length: int

    @classmethod
    def read(cls, path: Path) -> ModelFolder:
        """Checks the folder is a Transformer → mean Pooling (→ Normalize) model."""
        try:
            modules = json.loads((path / "modules.json").read_text())
            kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
            pooling = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
            pooling_config = json.loads((path / pooling / "config.json").read_text())
            bert_config = json.loads((path / "sentence_bert_config.json").read_text())
        except (OSError, ValueError, KeyError, StopIteration) as exc:
            raise ConfigurationError(
                f"{path} is not a sentence-transformers model folder the ONNX export reads "
                f"({exc}); set TRACETUNE_EMBEDDING_BACKEND=torch"
            ) from exc
        if kinds[:2] != ["Transformer", "Pooling"] or not pooling_config.get(
            "pooling_mode_mean_tokens"
        ):
            raise ConfigurationError(
                f"the ONNX export supports Transformer + mean-pooling models, not {kinds}; "
                "set TRACETUNE_EMBEDDING_BACKEND=torch"
            )
        return cls(path, int(bert_config.get("max_seq_length", 256)))

    def digest(self) -> str:
        """Changes with any file of the folder (names, sizes, times) or the export code."""
        h = hashlib.sha256(f"{EXPORT_FORMAT}|{self.path.resolve()}".encode())
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            stat = file.stat()
            h.update(f"|{file.relative_to(self.path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return h.hexdigest()[:16]


def onnx_file(folder: ModelFolder, precision: Precision, cache_dir: Path | None = None) -> Path:
    """The cached ONNX file for `folder` at `precision`, built now if missing."""
    target_dir = (cache_dir or default_cache_dir()) / folder.digest()
    target = target_dir / f"model-{precision}.onnx"
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with _locked(target_dir / ".lock"):
        if target.is_file():  # another process built it while we waited
            return target
        fp32 = target_dir / "model-fp32.onnx"
        if not fp32.is_file():
            _atomic(fp32, lambda tmp: _export_fp32(folder, tmp))
        if precision == "int8":
            _atomic(target, lambda tmp: _quantise(fp32, tmp))
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic(target: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, so readers never see half a file."""
    fd, name = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # a model, not a secret: readable by the service's other users
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _export_fp32(folder: ModelFolder, out: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    model: Any = SentenceTransformer(str(folder.path), device="cpu")
    transformer = model[0].auto_model.eval()
    # The eager attention traces into plain MatMul/Softmax nodes every runtime fuses well.
    transformer.set_attn_implementation("eager")

    class SentenceVector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    example = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    # The TorchScript exporter (no onnxscript needed) warns that it is the legacy one, and the
    # tracer about a padding check that is constant for inputs without a cache, as here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceVector(),
            (example, example, torch.zeros_like(example)),
            str(out),
            input_names=list(INPUT_NAMES),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _quantise(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    # MatMuls of two activations are attention scores and their weighted sum: kept float.
    activation_products = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and not any(i in weights for i in node.input)
    ]
    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        nodes_to_exclude=activation_products,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def main() -> None:
    """Build the bundled model's ONNX files into the cache (used by `make install`)."""
    from tracetune.backend.vectors.embeddings import resolve_model
    from tracetune.sync.settings import Settings

    settings = Settings()
    folder = ModelFolder.read(Path(resolve_model(settings.tracetune_embedding_model)))
    for precision in ("fp32", "int8"):
        print(onnx_file(folder, precision, settings.tracetune_model_cache_dir))


if __name__ == "__main__":
    main()
