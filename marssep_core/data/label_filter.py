"""Label consistency: drop clips whose own label an out-of-fold classifier does not rank highly.

A multinomial logistic regression on clip descriptors (log-mel statistics from the catalog) is
trained with group-aware stratified folds per corpus, so a clip is always scored by a model that
never saw its recording origin. A clip whose label is not among the ``top_k`` predictions is
``label_inconsistent``. A class never drops below ``min_class_clips`` clips (the most doubtful
go first; classes already smaller lose none): with so few examples the classifier's doubt says
more about the class size than about the clip, and a class whose recordings differ widely (a hand
saw, a sawmill, a buzz saw) would otherwise lose most of them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from marssep_core.config import LabelFilterConfig


def out_of_fold_rank(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, cfg: LabelFilterConfig) -> np.ndarray:
    """Rank (1 = top) of each clip's own label under a model trained without its fold.

    ``features`` ``(clips, dims)``; ``labels`` and ``groups`` ``(clips,)``. Returns ``(clips,)``
    ints; a clip whose class was absent from its training folds gets rank ``n_classes``.
    """
    classes, class_sizes = np.unique(labels, return_counts=True)
    ranks = np.full(len(labels), len(classes), dtype=int)
    n_groups = len(np.unique(groups))
    # stratified folds need a class with at least as many clips as folds (a small import may have none)
    folds = min(cfg.folds, n_groups, int(class_sizes.max(initial=0)))
    if len(classes) < 2 or folds < 2:
        return np.ones(len(labels), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning))
        for train, held in splitter.split(features, labels, groups):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.inverse_regularization, max_iter=300))
            model.fit(features[train], labels[train])
            proba = model.predict_proba(features[held])
            known = list(model.classes_)
            for row, label in zip(range(len(held)), labels[held]):
                if label not in known:
                    continue
                own = proba[row, known.index(label)]
                ranks[held[row]] = 1 + int(np.sum(proba[row] > own))
    return ranks


def label_consistency(clips: pd.DataFrame, cfg: LabelFilterConfig) -> pd.DataFrame:
    """Per-clip ``label_rank`` and ``label_drop`` (bool), computed separately per corpus."""
    out = pd.DataFrame({"label_rank": 1, "label_drop": False}, index=clips.index)
    if not cfg.enabled:
        return out
    for _, part in clips.groupby("corpus"):
        features = np.stack(part["features"].map(np.asarray).to_list())
        ranks = out_of_fold_rank(features, part["class"].to_numpy(), part["origin"].to_numpy(), cfg)
        out.loc[part.index, "label_rank"] = ranks
        for _, members in part.groupby("class"):
            doubtful = out.loc[members.index, "label_rank"]
            doubtful = doubtful[doubtful > cfg.top_k].sort_values(ascending=False, kind="stable")
            out.loc[doubtful.index[: max(0, len(members) - cfg.min_class_clips)], "label_drop"] = True
    return out
