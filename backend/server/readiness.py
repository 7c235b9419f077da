"""Whether this worker can predict at all, for `/health`: every signal runs, Redis answers.

A worker that answers `/health` with UP while each prediction fails is worse than one that is
down: Label Studio keeps sending it tasks and reviewers see no pre-labels. So the health check
runs every signal on one short probe text (about a millisecond once the signals are loaded) and
pings Redis; what fails is reported by name and the check answers 503. The first probe, run
while the app is built, is also what loads every signal's lazy parts (language models, name
lists) in the main thread before the worker serves.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from tracetune.backend.signals import Signal

#: Exercises every signal: prose in two languages, a question, an e-mail address, code.
PROBE_TEXT = (
    "Hello, can you check my order? Write to sam@example.com.\n"
    "```python\nprint('ok')\n```\nMerci beaucoup, à bientôt."
)


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def prediction_problems(signals: Mapping[str, Signal], client: redis.Redis) -> dict[str, str]:
    """What keeps this process from predicting, by part; empty when it can."""
    found: dict[str, str] = {}
    for name, signal in signals.items():
        try:
            results = signal.compute([PROBE_TEXT])
        except Exception as exc:  # any failure means this signal cannot run here
            found[f"signal {name}"] = _failure(exc)
            continue
        if len(results) != 1:
            found[f"signal {name}"] = f"returned {len(results)} results for 1 text"
    try:
        client.ping()
    except redis.RedisError as exc:
        found["redis"] = _failure(exc)
    return found
