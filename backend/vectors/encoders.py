"""Runtimes that turn texts into normalised sentence vectors: PyTorch, ONNX Runtime, OpenVINO.

PyTorch (sentence-transformers) is the reference. The others run one ONNX graph built here
from the same model folder (`onnx_export`), tokenised by the folder's own `tokenizer.json`,
texts sorted by length so a batch pads little, as sentence-transformers does:

- `openvino`: the ONNX graph on OpenVINO's CPU plugin, which computes in bfloat16 on CPUs
  with AMX or AVX512-BF16 (measured within 1e-4 cosine of PyTorch here) and in float32
  elsewhere. The fastest on CPU, and `auto`'s choice there. Concept training asks for exact
  vectors: those come from a float32 compilation of the same graph, since refitting a
  classifier amplifies bfloat16's differences (0.023 on a score, against 0.007 for scoring).
- `onnx`: ONNX Runtime, float32; with the CUDA execution provider when onnxruntime-gpu and
  a GPU are present, else on CPU.
- `onnx-int8`: ONNX Runtime on the int8 graph. Faster than PyTorch on CPUs without bf16, but
  its vectors differ more (see docs/benchmarks.md), so it has its own cache key.

`auto` takes CUDA when there is a GPU (ONNX Runtime's CUDA provider, else PyTorch on CUDA),
otherwise OpenVINO.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from tracetune.backend.vectors.onnx_export import INPUT_NAMES, ModelFolder, onnx_file
from tracetune.sync.errors import ConfigurationError

log = logging.getLogger(__name__)

BackendName = Literal["auto", "torch", "onnx", "onnx-int8", "openvino"]
BACKENDS: tuple[BackendName, ...] = ("auto", "torch", "onnx", "onnx-int8", "openvino")


class Encoder(Protocol):
    #: The runtime and where it runs, for logs and benchmarks (e.g. "openvino CPU bf16").
    description: str

    def encode(self, texts: Sequence[str], batch_size: int, exact: bool = False) -> np.ndarray:
        """Normalised float32 vectors, one row per text; `exact` computes in float32 throughout
        (for concept training, where a refit amplifies bfloat16's small differences)."""
        ...


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def onnxruntime_providers() -> list[str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def resolve_backend(name: BackendName) -> BackendName:
    """`auto` made concrete for this machine."""
    if name != "auto":
        return name
    if cuda_available():
        return "onnx" if "CUDAExecutionProvider" in onnxruntime_providers() else "torch"
    return "openvino" if importlib.util.find_spec("openvino") else "torch"


class TorchEncoder:
    def __init__(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        device = "cuda" if cuda_available() else "cpu"
        self.model = SentenceTransformer(path, device=device)
        self.description = f"torch {device}"

    def encode(self, texts: Sequence[str], batch_size: int, exact: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class _GraphEncoder:
    """Tokenise with the folder's tokenizer and run a graph batch by batch, shortest first."""

    def __init__(
        self,
        folder: ModelFolder,
        run: Callable[[dict[str, np.ndarray]], Any],
        run_exact: Callable[[], Callable[[dict[str, np.ndarray]], Any]] | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder.path / "tokenizer.json"))
        self.tokenizer.enable_truncation(folder.max_seq_length)
        pad = self.tokenizer.token_to_id("[PAD]") or 0
        self.tokenizer.enable_padding(pad_id=pad, pad_token="[PAD]")
        self.run = run
        self._make_exact = run_exact
        self._exact: Callable[[dict[str, np.ndarray]], Any] | None = None
        self.description = ""

    def encode(self, texts: Sequence[str], batch_size: int, exact: bool = False) -> np.ndarray:
        run = self.run
        if exact and self._make_exact is not None:
            self._exact = self._exact or self._make_exact()
            run = self._exact
        order = np.argsort([len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            inputs = dict(zip(INPUT_NAMES, (ids, mask, np.zeros_like(ids)), strict=True))
            vectors = np.asarray(run(inputs), dtype=np.float32)
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def onnxruntime_encoder(folder: ModelFolder, int8: bool, cache_dir: Path | None) -> _GraphEncoder:
    import onnxruntime

    path = onnx_file(folder, "int8" if int8 else "fp32", cache_dir)
    options = onnxruntime.SessionOptions()
    # Threads that spin after a run steal the CPU from the request threads beside them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wanted = ["CUDAExecutionProvider"] if not int8 else []
    providers = [p for p in wanted if p in onnxruntime_providers()] + ["CPUExecutionProvider"]
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    encoder = _GraphEncoder(folder, lambda inputs: session.run(None, inputs)[0])
    used = session.get_providers()[0].removesuffix("ExecutionProvider")
    encoder.description = f"onnxruntime {used} {'int8' if int8 else 'fp32'}"
    return encoder


def _per_thread(compiled: Any) -> Callable[[dict[str, np.ndarray]], Any]:
    """Inference on a compiled OpenVINO model from any thread: one infer request per thread.

    Calling the compiled model itself shares one request, which a second request thread of
    the same gunicorn worker finds busy (`RuntimeError`) while the first is still running.
    """
    local = threading.local()

    def run(inputs: dict[str, np.ndarray]) -> Any:
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        return request.infer(inputs)[0]

    return run


def openvino_encoder(folder: ModelFolder, cache_dir: Path | None) -> _GraphEncoder:
    import openvino

    core = openvino.Core()
    graph = str(onnx_file(folder, "fp32", cache_dir))
    compiled = core.compile_model(graph, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()

    def float32() -> Callable[[dict[str, np.ndarray]], Any]:
        return _per_thread(core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}))

    reduced = precision != "f32"
    encoder = _GraphEncoder(folder, _per_thread(compiled), float32 if reduced else None)
    encoder.description = f"openvino CPU {precision}"
    return encoder


def load_encoder(path: str, backend: BackendName, cache_dir: Path | None = None) -> Encoder:
    """The encoder for a model on the chosen runtime.

    `auto` keeps PyTorch for what the ONNX export cannot read (a hub name served from the
    Hugging Face cache, a model without mean pooling); naming a runtime makes that an error.
    """
    chosen = resolve_backend(backend)
    encoder: Encoder
    if chosen == "torch":
        encoder = TorchEncoder(path)
    else:
        try:
            folder = ModelFolder.read(Path(path))
        except ConfigurationError:
            if backend != "auto":
                raise
            log.info("embedding model %s: no ONNX export for it, using torch", path)
            return load_encoder(path, "torch", cache_dir)
        if chosen == "openvino":
            encoder = openvino_encoder(folder, cache_dir)
        else:
            encoder = onnxruntime_encoder(folder, chosen == "onnx-int8", cache_dir)
    log.info("embedding model %s on %s", path, encoder.description)
    return encoder
