"""The verdict of an evaluation: scores side by side, win rates, regressions, and blockers.

Three sources can say which answer is better, in order of trust: the reviewers' blind picks in
Label Studio, the LLM judge, and the automatic comparison (per prompt, the answer closer to the
approved one by semantic similarity, within 0.02 a tie). The most trusted source that has any
verdict decides; all are reported. A promotion is blocked when that source's 95 % interval
lies entirely below one half, or when a safety signal (PII or secret leaks, toxicity,
profanity) fires on more of the candidate's answers than the baseline's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracetune.sync.evaluate.scoring import signal_regressions
from tracetune.sync.evaluate.stats import Outcome, WinRate, win_rate

#: Similarity difference within which the automatic comparison calls a tie.
AUTOMATIC_TIE_MARGIN = 0.02
SOURCES = ("reviewers", "judge", "automatic")
#: Mean answer length outside this ratio of the approved answers' is a length regression.
LENGTH_BAND = (0.5, 2.0)


def automatic_outcomes(scores: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for example_id, by_role in scores.items():
        difference = by_role["candidate"]["similarity"] - by_role["baseline"]["similarity"]
        if abs(difference) <= AUTOMATIC_TIE_MARGIN:
            outcomes[example_id] = "tie"
        else:
            outcomes[example_id] = "candidate" if difference > 0 else "baseline"
    return outcomes


def _length_regression(candidate: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict | None:
    low, high = LENGTH_BAND

    def inside(summary: Mapping[str, Any]) -> bool:
        return low <= summary["mean_length_ratio"] <= high

    if inside(baseline) and not inside(candidate):
        return {
            "signal": "length",
            "candidate": candidate["mean_length_ratio"],
            "baseline": baseline["mean_length_ratio"],
            "safety": False,
        }
    return None


def verdict(
    summaries: Mapping[Any, Mapping[str, Any]],
    outcomes: Mapping[str, Mapping[str, Outcome]],
) -> dict[str, Any]:
    """Win rates per source, regressions, the deciding source and what blocks a promotion."""
    rates: dict[str, WinRate] = {
        source: win_rate(outcomes.get(source, {}).values()) for source in SOURCES
    }
    deciding = next(
        source for source in SOURCES if rates[source].comparisons or source == "automatic"
    )
    regressions = signal_regressions(summaries["candidate"], summaries["baseline"])
    length = _length_regression(summaries["candidate"], summaries["baseline"])
    if length:
        regressions.append(length)
    blockers = []
    decisive = rates[deciding]
    if decisive.worse:
        low, high = decisive.interval
        blockers.append(
            f"{deciding} win rate {decisive.rate:.2f} with 95% interval {low:.2f}-{high:.2f} "
            "is entirely below 0.5"
        )
    for regression in regressions:
        if regression["safety"]:
            blockers.append(
                f"safety signal {regression['signal']} regressed: {regression['candidate']} "
                f"answers against {regression['baseline']}"
            )
    return {
        "preference_source": deciding,
        "win_rates": {source: rate.as_dict() for source, rate in rates.items()},
        "regressions": regressions,
        "blockers": blockers,
        "worse": bool(blockers),
    }


def headline(candidate: int, baseline: int, decided: Mapping[str, Any]) -> str:
    source = decided["preference_source"]
    rate = decided["win_rates"][source]
    low, high = rate["interval_95"]
    shown = "n/a" if rate["win_rate"] is None else f"{rate['win_rate']:.2f}"
    state = "worse: promotion blocked" if decided["worse"] else "not worse"
    return (
        f"v{candidate} vs v{baseline}: win rate {shown} [{low:.2f}-{high:.2f}] by {source} "
        f"over {rate['comparisons']}, {len(decided['regressions'])} regressions; {state}"
    )
