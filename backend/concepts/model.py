"""A concept's classifier: logistic regression on normalised embeddings, Platt-calibrated.

Calibration matters because the backend compares every concept with one threshold and shows
the score to reviewers: the raw decision value of a logistic regression trained on 40 examples
is not a probability. The sigmoid that maps decision values to [0, 1] is fitted on
cross-validated decision values (never on the examples the model was fitted on), and the same
out-of-fold values give the ROC-AUC reported by `tracetune concepts list`.

The fitted model is a weight vector, a bias and two calibration numbers, stored as JSON: no
pickles in Redis.
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
        )


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
    classifier = _classifier().fit(vectors, labels)
    return ConceptModel(
        weights=classifier.coef_[0].astype(np.float32),
        bias=float(classifier.intercept_[0]),
        slope=float(calibration.coef_[0][0]),
        intercept=float(calibration.intercept_[0]),
        cv_auc=round(float(roc_auc_score(labels, out_of_fold)), 4),
        positives=positives,
        negatives=negatives,
    )
