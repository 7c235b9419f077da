"""Signals: importing this package registers every built-in signal in `SIGNALS`."""

from tracetune.backend.signals import (  # noqa: F401  (imported to register)
    code,
    language,
    pii,
    profanity,
    question,
    refusal,
    secrets,
    self_reference,
    text_stats,
)
from tracetune.backend.signals.base import SIGNALS, Reads, Signal, SignalResult, Span

__all__ = ["SIGNALS", "Reads", "Signal", "SignalResult", "Span"]
