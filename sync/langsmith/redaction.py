"""What of a run's metadata may reach task data: never anything that looks like a credential.

Task data is visible to every annotator and lands in exports, so a metadata entry is copied
only when its value is a plain scalar and neither its key nor its value is on the deny-list:

* keys naming a credential, matched by word (`client_secret`, `X-Api-Key`, `userPassword`,
  `dsn`) or glued (`apikey`, `dbpassword`, `accesstoken`): `DENIED_KEY_WORDS`,
  `DENIED_KEY_PARTS`; counts such as `max_tokens` or `keyword` are not credentials and stay;
* values that carry one whatever the key: a URL with `user:password@` (DSNs, database and
  broker URLs), an HTTP authorization value (`Bearer ...`, `Basic ...`, `Token ...`), a PEM
  private key: `DENIED_VALUES`.

The SDK's own environment copies (`LANGSMITH_*`, `LANGCHAIN_*`) are tracing plumbing and are
dropped too.
"""

from __future__ import annotations

import functools
import re
from typing import Any

#: A key is denied when one of its words (split at `_`, `-`, `.`, spaces and camelCase) is one
#: of these.
DENIED_KEY_WORDS = frozenset((
    "password", "passwd", "pwd", "pass", "passphrase", "secret", "secrets", "token", "key",
    "keys", "apikey", "cookie", "cookies", "credential", "credentials", "creds", "auth", "oauth",
    "authorization", "bearer", "jwt", "dsn", "signature", "otp",
))  # fmt: skip
#: ...or when the key, lower-cased without separators, contains one of these.
DENIED_KEY_PARTS = (
    "password", "passwd", "passphrase", "secret", "apikey", "accesskey", "privatekey",
    "cookie", "credential", "authorization", "bearer", "accesstoken", "authtoken",
    "refreshtoken", "apitoken", "idtoken", "sessiontoken", "csrftoken",
)  # fmt: skip
DENIED_VALUES = (
    re.compile(r"[a-z][a-z0-9+.-]*://[^/?#@\s:]*:[^/?#@\s]+@", re.IGNORECASE),
    re.compile(r"^\s*(?:bearer|basic|token|digest)\s+\S{8,}", re.IGNORECASE),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
#: Environment variables the SDK copies into metadata: tracing plumbing, not run context.
_SDK_ENVIRONMENT = ("LANGSMITH_", "LANGCHAIN_")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def key_words(key: str) -> list[str]:
    """`X-Api-Key` → x, api, key; `clientSecret` → client, secret; `DB_URL` → db, url."""
    return [word.lower() for word in _WORD.findall(key)]


def is_credential(key: str, value: Any) -> bool:
    """True when the entry names or holds a credential and must not reach task data."""
    if _names_credential(key):
        return True
    return isinstance(value, str) and any(pattern.search(value) for pattern in DENIED_VALUES)


@functools.lru_cache(maxsize=4096)
def _names_credential(key: str) -> bool:
    """Whether a key names a credential; cached, since every run of an app repeats its keys."""
    words = key_words(key)
    squashed = "".join(words)
    return bool(DENIED_KEY_WORDS.intersection(words)) or any(
        part in squashed for part in DENIED_KEY_PARTS
    )


def safe_metadata(run: dict[str, Any]) -> dict[str, Any]:
    """Run metadata without anything that looks like a credential (never write secrets)."""
    metadata = ((run.get("extra") or {}).get("metadata") or {}) if run.get("extra") else {}
    kept: dict[str, Any] = {
        key: value
        for key, value in metadata.items()
        if isinstance(value, (str, int, float, bool))
        and not key.startswith(_SDK_ENVIRONMENT)
        and not is_credential(key, value)
    }
    kept["run_name"] = run.get("name") or ""
    kept["run_type"] = run.get("run_type") or ""
    if run.get("tags"):
        kept["tags"] = ",".join(map(str, run["tags"]))
    return kept
