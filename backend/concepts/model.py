"""A concept's classifier: logistic regression on normalised embeddings, Platt-calibrated.

Calibration matters because the backend compares every concept with one threshold and shows
the score to reviewers: the raw decision value of a logistic regression trained on 40 examples
is not a probability. The sigmoid that maps decision values to [0, 1] is fitted on
cross-validated decision values (never on the examples the model was fitted on), and the same
out-of-fold values give the ROC-AUC reported by `tracetune concepts list`.

Each concept also gets its own firing threshold, chosen for precision on those out-of-fold
scores: the lowest calibrated score at which at least `TARGET_PRECISION` of the held-out
texts scoring that high are positives. One global threshold would let a concept with loose
examples tick wrong flags while a tight one misses; a flag a reviewer must untick costs more
than one they add.

The fitted model is a weight vector, a bias, two calibration numbers and the threshold with
its held-out precision and recall, stored as JSON: no pickles in Redis.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from tracetune.sync.errors import InvalidInputError

MIN_EXAMPLES_PER_CLASS = 2
MAX_FOLDS = 5
#: Held-out precision a concept's threshold must reach; never below `MIN_THRESHOLD`.
TARGET_PRECISION = 0.9
MIN_THRESHOLD = 0.5
MAX_THRESHOLD = 0.99
#: Inverse regularisation: embeddings are unit vectors, so weights need room to grow.
C = 4.0


@dataclass(frozen=True)
class ConceptModel:
    weights: np.ndarray
    bias: float
    slope: float
    intercept: float
    cv_auc: float | None
    positives: int
    negatives: int
    threshold: float = MIN_THRESHOLD
    cv_precision: float | None = None  # held-out precision and recall at `threshold`
    cv_recall: float | None = None

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """Calibrated probability that each row shows the concept."""
        decision = vectors @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-(self.slope * decision + self.intercept)))

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": base64.b64encode(self.weights.astype(np.float32).tobytes()).decode(),
            "bias": self.bias,
            "slope": self.slope,
            "intercept": self.intercept,
            "cv_auc": self.cv_auc,
            "positives": self.positives,
            "negatives": self.negatives,
            "threshold": self.threshold,
            "cv_precision": self.cv_precision,
            "cv_recall": self.cv_recall,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConceptModel:
        weights = np.frombuffer(base64.b64decode(data["weights"]), dtype=np.float32)
        return cls(
            weights=weights,
            bias=float(data["bias"]),
            slope=float(data["slope"]),
            intercept=float(data["intercept"]),
            cv_auc=None if data["cv_auc"] is None else float(data["cv_auc"]),
            positives=int(data["positives"]),
            negatives=int(data["negatives"]),
            threshold=float(data.get("threshold", MIN_THRESHOLD)),
            cv_precision=_optional(data.get("cv_precision")),
            cv_recall=_optional(data.get("cv_recall")),
        )


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def precision_recall_at(
    scores: np.ndarray, labels: np.ndarray, threshold: float
) -> tuple[float, float]:
    """Precision and recall of "score >= threshold" (precision 1.0 when nothing fires)."""
    fired = scores >= threshold
    true_positives = int((fired & (labels == 1)).sum())
    precision = true_positives / int(fired.sum()) if fired.any() else 1.0
    recall = true_positives / max(1, int((labels == 1).sum()))
    return precision, recall


def precise_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The lowest threshold in [MIN_THRESHOLD, MAX_THRESHOLD] reaching TARGET_PRECISION on
    held-out scores; where none does, the one with the best precision (the lowest of ties)."""
    candidates = sorted(
        {MIN_THRESHOLD, *(float(s) for s in scores if MIN_THRESHOLD < s <= MAX_THRESHOLD)}
    )
    best, best_precision = MAX_THRESHOLD, -1.0
    for candidate in candidates:
        precision, recall = precision_recall_at(scores, labels, candidate)
        if recall == 0.0:
            break
        if precision >= TARGET_PRECISION:
            return round(candidate, 4)
        if precision > best_precision:
            best, best_precision = candidate, precision
    return round(best, 4)


def _classifier() -> LogisticRegression:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000)


def fit(vectors: np.ndarray, labels: np.ndarray) -> ConceptModel:
    """Fit, cross-validate and calibrate; `labels` are 1 for positive examples."""
    positives = int(labels.sum())
    negatives = int(len(labels) - positives)
    if min(positives, negatives) < MIN_EXAMPLES_PER_CLASS:
        raise InvalidInputError(
            f"a concept needs at least {MIN_EXAMPLES_PER_CLASS} positive and "
            f"{MIN_EXAMPLES_PER_CLASS} negative examples (has {positives} and {negatives})"
        )
    folds = StratifiedKFold(
        n_splits=min(MAX_FOLDS, positives, negatives), shuffle=True, random_state=0
    )
    out_of_fold = cross_val_predict(
        _classifier(), vectors, labels, cv=folds, method="decision_function"
    )
    calibration = LogisticRegression(C=1e4, max_iter=1000).fit(out_of_fold.reshape(-1, 1), labels)
    slope, intercept = float(calibration.coef_[0][0]), float(calibration.intercept_[0])
    held_out = 1.0 / (1.0 + np.exp(-(slope * out_of_fold + intercept)))
    threshold = precise_threshold(held_out, labels)
    precision, recall = precision_recall_at(held_out, labels, threshold)
    classifier = _classifier().fit(vectors, labels)
    return ConceptModel(
        weights=classifier.coef_[0].astype(np.float32),
        bias=float(classifier.intercept_[0]),
        slope=slope,
        intercept=intercept,
        cv_auc=round(float(roc_auc_score(labels, out_of_fold)), 4),
        positives=positives,
        negatives=negatives,
        threshold=threshold,
        cv_precision=round(precision, 4),
        cv_recall=round(recall, 4),
    )
