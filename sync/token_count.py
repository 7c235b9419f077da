"""Token counts with tiktoken, offline.

tiktoken downloads its BPE files on first use, which fails without internet. The same files
ship inside the `bpe-openai` wheel; when tiktoken's cache lacks them they are copied there and
tiktoken verifies them against its own pinned SHA-256 before use. Without either, counts fall
back to a documented estimate (`ESTIMATE_RULE`) and say so (`exact` is False).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import tiktoken

#: Where tiktoken fetches each encoding; the cache file name is the SHA-1 of this URL.
_BLOB_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}

ESTIMATE_RULE = "estimate: ceil(UTF-8 bytes / 4) per text, as OpenAI's rule of thumb"

#: OpenAI's accounting for chat examples: tokens framing each message and the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3


class _Encoder(Protocol):
    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


def _tiktoken_cache_dir() -> Path:
    """The directory tiktoken itself reads (same precedence as `tiktoken.load`)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return Path(os.environ[variable])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _seed_cache(name: str) -> bool:
    """Copy the bundled BPE file into tiktoken's cache; tiktoken checks its hash on load."""
    url = _BLOB_URLS.get(name)
    if url is None:
        return False
    target = _tiktoken_cache_dir() / hashlib.sha1(url.encode()).hexdigest()
    if target.exists():
        return True
    try:
        bundled = resources.files("bpe_openai") / "data" / f"{name}.tiktoken.gz"
        payload = gzip.decompress(bundled.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    temporary.write_bytes(payload)
    os.replace(temporary, target)
    return True


def encoding_name_for(model: str | None, configured: str | None = None) -> str:
    """The tiktoken encoding of a model (o200k_base for current chat models)."""
    if configured:
        return configured
    if model:
        base = model.split(":")[1] if model.startswith("ft:") else model
        try:
            return tiktoken.encoding_name_for_model(base)
        except KeyError:
            pass
    return "o200k_base"


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of texts and of chat examples; `exact` says whether tiktoken counted."""

    encoding: str
    exact: bool
    _encoder: _Encoder | None

    @property
    def method(self) -> str:
        return f"tiktoken {self.encoding}" if self.exact else ESTIMATE_RULE

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._encoder is not None:
            return len(self._encoder.encode(text, disallowed_special=()))
        return math.ceil(len(text.encode("utf-8")) / 4)

    def count_messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Tokens of one chat example as OpenAI counts it (content, names, tool calls)."""
        total = TOKENS_REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE
            content = message.get("content")
            if isinstance(content, str):
                total += self.count(content)
            elif isinstance(content, list):
                total += sum(self.count(str(part.get("text", ""))) for part in content)
            if message.get("name"):
                total += TOKENS_PER_NAME + self.count(str(message["name"]))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                total += self.count(str(function.get("name", "")))
                total += self.count(str(function.get("arguments", "")))
        return total


@lru_cache(maxsize=8)
def token_counter(encoding: str = "o200k_base") -> TokenCounter:
    """A counter for `encoding`: tiktoken when its file is cached or bundled, else the estimate.

    tiktoken is never asked to download (that hangs on DNS without internet): only a file
    already in its cache, or seeded from the bundled copy, is used.
    """
    if _seed_cache(encoding):
        try:
            return TokenCounter(encoding, True, tiktoken.get_encoding(encoding))
        except (ValueError, OSError, AssertionError):
            pass
    return TokenCounter(encoding, False, None)
