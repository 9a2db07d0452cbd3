"""Metrics with scikit-learn's names, keywords and results, computed by kestrel.

Every function here agrees with its scikit-learn namesake to 1e-9 (ties, sample weights and rare
positives included) and releases the GIL while it computes. The streaming accumulators
(:class:`BinaryAccumulator`, :class:`ClassificationAccumulator`,
:class:`SegmentationAccumulator`) take data batch by batch, merge across shards exactly, and
compute once.

Labels may be any numbers, booleans or strings; scores are converted to float64. Bad input (a
NaN score, mismatched lengths, a negative weight) raises ``ValueError`` with kestrel's message.
"""

import warnings

import numpy as np

from . import _kestrel

__all__ = [
    "roc_auc_score",
    "average_precision_score",
    "roc_curve",
    "precision_recall_curve",
    "confusion_matrix",
    "precision_recall_fscore_support",
    "f1_score",
    "jaccard_score",
    "BinaryAccumulator",
    "ClassificationAccumulator",
    "SegmentationAccumulator",
    "UndefinedMetricWarning",
]


class UndefinedMetricWarning(UserWarning):
    """A metric is ill-defined for the input and was set to a conventional value."""


def _array(x, name, dtype=None):
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got an array of shape {a.shape}")
    if dtype is not None:
        a = np.ascontiguousarray(a, dtype=dtype)
    return a


def _weights(sample_weight, n):
    if sample_weight is None:
        return None
    w = _array(sample_weight, "sample_weight", np.float64)
    if len(w) != n:
        raise ValueError(f"`sample_weight` has {len(w)} entries, expected {n}")
    return w


def _distinct(y, limit):
    """Up to ``limit`` distinct values of ``y``, sorted (a linear scan for numbers)."""
    if y.dtype.kind in "biuf":
        values = _kestrel.distinct_values(np.ascontiguousarray(y, dtype=np.float64), limit)
        if y.dtype.kind == "b":
            return [bool(v) for v in values]
        if y.dtype.kind in "iu":
            return [int(v) for v in values]
        return values
    return list(np.unique(y)[:limit])


def _binary_truth(y_true, pos_label, n_scores, classes=None):
    """``y_true == pos_label`` as a contiguous bool array, after scikit-learn's label checks
    (``pos_label=None`` needs labels in {0, 1} or {-1, 1}); ``classes`` are ``_distinct(y_true,
    3)`` when the caller has them."""
    y = _array(y_true, "y_true")
    if len(y) != n_scores:
        raise ValueError(f"`y_true` has {len(y)} entries but `y_score` has {n_scores}")
    if classes is None:
        classes = _distinct(y, 3)
    if len(classes) > 2:
        raise ValueError(f"y_true has more than two classes ({classes[:3]}...): expected binary labels")
    if pos_label is None:
        allowed = [{0, 1}, {-1, 1}, {0}, {1}, {-1}]
        if not any(set(classes) <= a for a in allowed) and not all(isinstance(c, bool) for c in classes):
            raise ValueError(
                f"y_true takes value in {set(classes)} and pos_label is not specified: either make "
                "y_true take value in {0, 1} or {-1, 1} or pass pos_label explicitly."
            )
        pos_label = 1
    if y.dtype.kind == "b":
        return np.ascontiguousarray(y == bool(pos_label)), classes
    return np.ascontiguousarray(y == pos_label), classes


def _scores(y_score):
    return _array(y_score, "y_score", np.float64)


def roc_curve(y_true, y_score, *, pos_label=None, sample_weight=None, drop_intermediate=True):
    """Receiver operating characteristic, as :func:`sklearn.metrics.roc_curve`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels; without ``pos_label`` they must be in {0, 1} or {-1, 1}.
    y_score : array-like of shape (n_samples,)
        Scores, higher meaning more likely positive.
    pos_label : int, float, bool or str, default=None
        The positive class (1 when None).
    sample_weight : array-like of shape (n_samples,), default=None
    drop_intermediate : bool, default=True
        Drop thresholds that do not change the curve's shape.

    Returns
    -------
    fpr, tpr, thresholds : ndarray
        The first threshold is ``inf``.
    """
    s = _scores(y_score)
    y, _ = _binary_truth(y_true, pos_label, len(s))
    return _kestrel.roc_curve(y, s, _weights(sample_weight, len(s)), drop_intermediate)


def precision_recall_curve(y_true, y_score, *, pos_label=None, sample_weight=None, drop_intermediate=False):
    """Precision-recall pairs for every threshold, as :func:`sklearn.metrics.precision_recall_curve`.

    Returns
    -------
    precision, recall : ndarray of shape (n_thresholds + 1,)
        The last point is (1, 0).
    thresholds : ndarray of shape (n_thresholds,)
        Increasing.
    """
    if drop_intermediate:
        raise NotImplementedError("drop_intermediate=True is not supported; use the default False")
    s = _scores(y_score)
    y, _ = _binary_truth(y_true, pos_label, len(s))
    if not y.any():
        warnings.warn(
            "No positive class found in y_true, recall is set to one for all thresholds.",
            UserWarning,
            stacklevel=2,
        )
    return _kestrel.precision_recall_curve(y, s, _weights(sample_weight, len(s)))


def average_precision_score(y_true, y_score, *, average="macro", pos_label=1, sample_weight=None):
    """Average precision of binary scores, as :func:`sklearn.metrics.average_precision_score`.

    ``average`` is accepted for compatibility; binary input has one score.
    """
    s = _scores(y_score)
    y, classes = _binary_truth(y_true, pos_label, len(s))
    if len(classes) == 2 and pos_label not in classes:
        raise ValueError(f"pos_label={pos_label} is not a valid label. It should be one of {classes}")
    if not y.any():
        warnings.warn(
            "No positive class found in y_true, recall is set to one for all thresholds.",
            UserWarning,
            stacklevel=2,
        )
        return 0.0
    return _kestrel.average_precision(y, s, _weights(sample_weight, len(s)))


def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None,
                  multi_class="raise", labels=None):
    """Area under the ROC curve, as :func:`sklearn.metrics.roc_auc_score`.

    Binary input: ``y_score`` of shape (n_samples,), the larger label being positive.
    Multiclass input: ``y_score`` of shape (n_samples, n_classes) of probabilities (rows summing
    to one) with ``multi_class="ovr"`` and ``average`` ``"macro"`` or ``"weighted"``.
    """
    if max_fpr is not None:
        raise NotImplementedError("max_fpr is not supported")
    s = np.asarray(y_score, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] > 2:
        if multi_class != "ovr":
            raise ValueError("multiclass input needs multi_class='ovr' ('ovo' is not supported)")
        y = _array(y_true, "y_true")
        classes = np.unique(y) if labels is None else np.asarray(labels)
        if len(classes) != s.shape[1]:
            raise ValueError(
                f"number of classes in y_true ({len(classes)}) not equal to the number of columns "
                f"in 'y_score' ({s.shape[1]})"
            )
        idx = np.searchsorted(classes, y)
        if np.any(idx >= len(classes)) or np.any(classes[np.minimum(idx, len(classes) - 1)] != y):
            raise ValueError("y_true holds labels that are not in `labels`")
        return _kestrel.roc_auc_ovr(
            np.ascontiguousarray(idx, dtype=np.int64),
            np.ascontiguousarray(s),
            average,
            _weights(sample_weight, len(y)),
        )
    if s.ndim == 2:
        s = s[:, -1]
    s = _scores(s)
    y = _array(y_true, "y_true")
    classes = _distinct(y, 3)
    if len(classes) > 2:
        raise ValueError("multiclass y_true needs y_score of shape (n_samples, n_classes)")
    if len(classes) < 2:
        warnings.warn(
            "Only one class is present in y_true. ROC AUC score is not defined in that case.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return float("nan")
    truth, _ = _binary_truth(y, classes[1], len(s), classes)
    return _kestrel.roc_auc(truth, s, _weights(sample_weight, len(s)))


def _encode(y_true, y_pred, labels, flatten=False):
    """Class indices of both label arrays and the classes (``labels``, or the sorted union)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if flatten:
        t, p = t.ravel(), p.ravel()
    t, p = _array(t, "y_true"), _array(p, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"`y_true` has {len(t)} entries but `y_pred` has {len(p)}")
    present = np.unique(np.concatenate([t, p]))
    classes = present if labels is None else np.asarray(labels)
    order = np.argsort(classes, kind="stable")
    ranked = classes[order]
    def index(y):
        at = np.minimum(np.searchsorted(ranked, y), len(ranked) - 1)
        known = ranked[at] == y
        return np.where(known, order[at], -1), known
    ti, tk = index(t)
    pi, pk = index(p)
    return ti, pi, tk & pk, classes, present


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None, normalize=None):
    """Confusion matrix, as :func:`sklearn.metrics.confusion_matrix`: rows are true classes
    (``labels`` order, or sorted), samples whose labels are not in ``labels`` are left out."""
    ti, pi, keep, classes, _ = _encode(y_true, y_pred, labels)
    w = _weights(sample_weight, len(ti))
    if w is not None:
        w = np.ascontiguousarray(w[keep])
    cm = _kestrel.confusion_matrix(
        np.ascontiguousarray(ti[keep], dtype=np.int64),
        np.ascontiguousarray(pi[keep], dtype=np.int64),
        len(classes),
        w,
    )
    if normalize is not None:
        with np.errstate(all="ignore"):
            if normalize == "true":
                cm = cm / cm.sum(axis=1, keepdims=True)
            elif normalize == "pred":
                cm = cm / cm.sum(axis=0, keepdims=True)
            elif normalize == "all":
                cm = cm / cm.sum()
            else:
                raise ValueError("normalize must be one of {'true', 'pred', 'all', None}")
        return np.nan_to_num(cm)
    if sample_weight is None or np.all(np.equal(np.mod(w, 1), 0)):
        return cm.astype(np.int64)
    return cm


def _set_wise(y_true, y_pred, labels, pos_label, average, flatten=False):
    """Class indices, classes and the positive class's index for the counting metrics, with
    scikit-learn's checks of ``average`` against the labels."""
    ti, pi, keep, classes, present = _encode(y_true, y_pred, labels, flatten)
    if labels is not None and not keep.all():
        raise NotImplementedError("`labels` must include every label of y_true and y_pred")
    pos = 0
    if average == "binary":
        if len(present) > 2:
            raise ValueError(
                "Target is multiclass but average='binary'. Please choose another average "
                "setting, one of [None, 'micro', 'macro', 'weighted']."
            )
        if pos_label not in list(classes):
            if len(present) >= 2:
                raise ValueError(
                    f"pos_label={pos_label} is not a valid label. It should be one of {list(present)}"
                )
            classes = np.append(classes, pos_label)
        pos = int(np.nonzero(classes == pos_label)[0][0])
    return ti, pi, classes, pos


def _confusion(ti, pi, n, sample_weight):
    return _kestrel.confusion_matrix(
        np.ascontiguousarray(ti, dtype=np.int64),
        np.ascontiguousarray(pi, dtype=np.int64),
        n,
        _weights(sample_weight, len(ti)),
    )


def _zero_division(zero_division, notes):
    if zero_division == "warn":
        if notes:
            warnings.warn("; ".join(notes), UndefinedMetricWarning, stacklevel=3)
    elif zero_division not in (0, 0.0):
        raise NotImplementedError("zero_division must be 'warn' or 0")


def precision_recall_fscore_support(y_true, y_pred, *, beta=1.0, labels=None, pos_label=1,
                                    average=None, warn_for=("precision", "recall", "f-score"),
                                    sample_weight=None, zero_division="warn"):
    """Precision, recall, F-beta and support, as
    :func:`sklearn.metrics.precision_recall_fscore_support`.

    Returns arrays per class with ``average=None`` (classes in ``labels`` order, or sorted), else
    floats and ``support=None``. A zero denominator gives 0 (``zero_division`` "warn" or 0).
    """
    ti, pi, classes, pos = _set_wise(y_true, y_pred, labels, pos_label, average)
    cm = _confusion(ti, pi, len(classes), sample_weight)
    r = _kestrel.precision_recall_fscore(np.ascontiguousarray(cm), float(beta), average, pos)
    _zero_division(zero_division, r["zero_division"])
    return r["precision"], r["recall"], r["fscore"], r["support"]


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
             zero_division="warn"):
    """F1 score, as :func:`sklearn.metrics.f1_score`."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        sample_weight=sample_weight, zero_division=zero_division,
    )[2]


def jaccard_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
                  zero_division="warn"):
    """Jaccard index (intersection over union), as :func:`sklearn.metrics.jaccard_score`.

    For segmentation, ``y_true`` and ``y_pred`` may be masks of any shape (they are flattened):
    ``average=None`` gives each class's IoU, ``"macro"`` their mean (mIoU over the classes
    present in either).
    """
    ti, pi, classes, pos = _set_wise(y_true, y_pred, labels, pos_label, average, flatten=True)
    w = None if sample_weight is None else np.asarray(sample_weight).ravel()
    cm = _confusion(ti, pi, len(classes), w)
    _zero_division(zero_division, [])
    return _kestrel.jaccard(np.ascontiguousarray(cm), average, pos)


def _flat(x, dtype):
    return np.ascontiguousarray(np.asarray(x).ravel(), dtype=dtype)


class BinaryAccumulator:
    """Binary targets and scores, batch by batch; ``merge`` adds another accumulator's samples.

    The results equal :func:`roc_auc_score`, :func:`average_precision_score`,
    :func:`roc_curve` and :func:`precision_recall_curve` on all the samples at once.

    Examples
    --------
    >>> acc = BinaryAccumulator()
    >>> acc.update([0, 1, 1], [0.2, 0.9, 0.4])
    >>> acc.roc_auc()
    1.0
    """

    def __init__(self):
        self._acc = _kestrel.BinaryAccumulator()

    def update(self, y_true, y_score, sample_weight=None):
        """Adds targets (bool or 0/1), scores and optional weights."""
        w = None if sample_weight is None else _flat(sample_weight, np.float64)
        self._acc.update(_flat(y_true, bool), _flat(y_score, np.float64), w)

    def merge(self, other):
        """Adds the samples of another ``BinaryAccumulator``."""
        self._acc.merge(other._acc)

    def __len__(self):
        return len(self._acc)

    def roc_auc(self):
        """Area under the ROC curve."""
        return self._acc.roc_auc()

    def average_precision(self):
        """Average precision."""
        return self._acc.average_precision()

    def roc_curve(self, drop_intermediate=True):
        """``(fpr, tpr, thresholds)``."""
        return self._acc.roc_curve(drop_intermediate)

    def precision_recall_curve(self):
        """``(precision, recall, thresholds)``."""
        return self._acc.precision_recall_curve()


class ClassificationAccumulator:
    """Class indices ``0..n_classes`` and rows of class probabilities, batch by batch.

    ``compute()`` gives ``{"accuracy", "macro_f1", "per_class", "roc_auc_ovr_macro",
    "confusion"}`` (the argmax of each row is the prediction), as ``kestrel eval`` reports them.
    """

    def __init__(self, n_classes):
        self._acc = _kestrel.ClassificationAccumulator(n_classes)

    def update(self, y_true, y_prob):
        """Adds class indices (n,) and probabilities (n, n_classes)."""
        p = np.ascontiguousarray(y_prob, dtype=np.float64)
        if p.ndim != 2:
            raise ValueError(f"`y_prob` must be 2-D (n_samples, n_classes), got shape {p.shape}")
        self._acc.update(_flat(y_true, np.int64), p)

    def merge(self, other):
        """Adds the samples of another ``ClassificationAccumulator`` of the same classes."""
        self._acc.merge(other._acc)

    def __len__(self):
        return len(self._acc)

    def compute(self):
        """The scores of every sample added so far."""
        return self._acc.compute()


class SegmentationAccumulator:
    """True and predicted masks (class indices, any shape), batch by batch; pixels whose true
    class is ``ignore_index`` (255 by default, ``None`` for none) are left out.

    ``compute()`` gives ``{"miou", "pixel_accuracy", "iou_per_class"}`` (``None`` where a class
    is neither present nor predicted).
    """

    def __init__(self, n_classes, ignore_index=255):
        self._acc = _kestrel.SegmentationAccumulator(n_classes, ignore_index)

    def update(self, y_true, y_pred):
        """Adds the pixels of masks of equal shape."""
        self._acc.update(_flat(y_true, np.int64), _flat(y_pred, np.int64))

    def merge(self, other):
        """Adds the pixels of another ``SegmentationAccumulator``."""
        self._acc.merge(other._acc)

    def compute(self):
        """The scores of every pixel added so far."""
        return self._acc.compute()
