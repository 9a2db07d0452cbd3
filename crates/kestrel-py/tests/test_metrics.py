"""kestrel.metrics against scikit-learn on random inputs with ties, weights and rare positives."""

import numpy as np
import pytest
import sklearn.metrics as sk

from kestrel import metrics as km

TOL = 1e-9


def cases():
    """(y_true in {0, 1}, scores with ties, weights) for several sizes and positive rates."""
    rng = np.random.default_rng(7)
    for n, rate, digits in [(50, 0.5, 1), (1000, 0.3, 2), (5000, 0.01, 2), (20000, 0.002, 3)]:
        y = (rng.random(n) < rate).astype(np.int64)
        y[:2] = [0, 1]  # both classes present
        s = np.round(rng.random(n) + 0.3 * y, digits)  # rounding makes ties
        w = rng.random(n) * 3
        yield y, s, w


def close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("weighted", [False, True])
def test_ranking_functions_equal_sklearn(weighted):
    for y, s, w in cases():
        w = w if weighted else None
        close(km.roc_auc_score(y, s, sample_weight=w), sk.roc_auc_score(y, s, sample_weight=w))
        close(
            km.average_precision_score(y, s, sample_weight=w),
            sk.average_precision_score(y, s, sample_weight=w),
        )
        for drop in [True, False]:
            for a, b in zip(
                km.roc_curve(y, s, sample_weight=w, drop_intermediate=drop),
                sk.roc_curve(y, s, sample_weight=w, drop_intermediate=drop),
            ):
                close(a, b)
        for a, b in zip(
            km.precision_recall_curve(y, s, sample_weight=w),
            sk.precision_recall_curve(y, s, sample_weight=w),
        ):
            close(a, b)


def test_labels_and_pos_label_follow_sklearn():
    y = np.array(["cat", "dog", "dog", "cat", "dog"])
    s = np.array([0.1, 0.9, 0.4, 0.4, 0.7])
    close(km.roc_auc_score(y, s), sk.roc_auc_score(y, s))
    for a, b in zip(km.roc_curve(y, s, pos_label="dog"), sk.roc_curve(y, s, pos_label="dog")):
        close(a, b)
    yb = np.array([-1, 1, 1, -1, 1])
    for a, b in zip(km.roc_curve(yb, s), sk.roc_curve(yb, s)):
        close(a, b)
    with pytest.raises(ValueError, match="pos_label is not specified"):
        km.roc_curve(np.array([2, 3, 3]), s[:3])
    with pytest.warns(UserWarning):
        assert np.isnan(km.roc_auc_score([1, 1, 1], [0.2, 0.3, 0.4]))


def test_multiclass_roc_auc_ovr_equals_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 500)
    p = rng.random((500, 4)) + np.eye(4)[y]
    p = np.round(p / p.sum(axis=1, keepdims=True), 3)
    p = p / p.sum(axis=1, keepdims=True)
    w = rng.random(500)
    for average in ["macro", "weighted"]:
        for weights in [None, w]:
            close(
                km.roc_auc_score(y, p, multi_class="ovr", average=average, sample_weight=weights),
                sk.roc_auc_score(y, p, multi_class="ovr", average=average, sample_weight=weights),
            )


def counting_cases():
    rng = np.random.default_rng(11)
    for k, n in [(2, 300), (3, 1000), (6, 4000)]:
        y = rng.integers(0, k, n)
        pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
        yield y, pred, rng.random(n) * 2
    # A rare class, predicted never, and string labels.
    y = np.array(["a"] * 50 + ["b"] * 49 + ["c"])
    pred = np.array(["a"] * 45 + ["b"] * 55)
    yield y, pred, np.linspace(0.5, 1.5, 100)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("weighted", [False, True])
def test_counting_functions_equal_sklearn(weighted):
    for y, pred, w in counting_cases():
        w = w if weighted else None
        close(
            km.confusion_matrix(y, pred, sample_weight=w),
            sk.confusion_matrix(y, pred, sample_weight=w),
        )
        for norm in ["true", "pred", "all"]:
            close(
                km.confusion_matrix(y, pred, sample_weight=w, normalize=norm),
                sk.confusion_matrix(y, pred, sample_weight=w, normalize=norm),
            )
        binary = len(np.unique(np.concatenate([y, pred]))) == 2
        averages = [None, "micro", "macro", "weighted"] + (["binary"] if binary else [])
        for average in averages:
            pos = {"pos_label": 1} if binary and average == "binary" else {}
            for beta in [1.0, 0.5, 2.0]:
                got = km.precision_recall_fscore_support(y, pred, beta=beta, average=average,
                                                         sample_weight=w, **pos)
                want = sk.precision_recall_fscore_support(y, pred, beta=beta, average=average,
                                                          sample_weight=w, **pos)
                for a, b in zip(got, want):
                    if b is None:
                        assert a is None
                    else:
                        close(a, b)
            close(km.f1_score(y, pred, average=average, sample_weight=w, **pos),
                  sk.f1_score(y, pred, average=average, sample_weight=w, **pos))
            close(km.jaccard_score(y, pred, average=average, sample_weight=w, **pos),
                  sk.jaccard_score(y, pred, average=average, sample_weight=w, **pos))
        labels = np.unique(np.concatenate([y, pred]))[::-1]
        close(km.confusion_matrix(y, pred, labels=labels[:2]),
              sk.confusion_matrix(y, pred, labels=labels[:2]))
        close(km.f1_score(y, pred, labels=labels, average=None),
              sk.f1_score(y, pred, labels=labels, average=None))


def test_binary_average_checks_follow_sklearn():
    with pytest.raises(ValueError, match="multiclass but average='binary'"):
        km.f1_score([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="pos_label=1 is not a valid label"):
        km.f1_score([2, 3, 3], [2, 3, 2])
    with pytest.warns(km.UndefinedMetricWarning):
        assert km.f1_score([0, 0], [0, 0]) == sk.f1_score([0, 0], [0, 0], zero_division=0)


def test_jaccard_reads_masks_as_segmentation():
    rng = np.random.default_rng(5)
    t = rng.integers(0, 4, (3, 17, 19))
    p = np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 4, t.shape))
    close(km.jaccard_score(t, p, average=None), sk.jaccard_score(t.ravel(), p.ravel(), average=None))
    close(km.jaccard_score(t, p, average="macro"), sk.jaccard_score(t.ravel(), p.ravel(), average="macro"))


def test_accumulators_merged_over_shards_equal_one_pass():
    y, s, w = list(cases())[2]
    truth = y.astype(bool)
    whole = km.BinaryAccumulator()
    whole.update(truth, s, w)
    parts = []
    for idx in np.array_split(np.arange(len(y)), 3):
        a = km.BinaryAccumulator()
        a.update(truth[idx], s[idx], w[idx])
        parts.append(a)
    merged = parts[0]
    merged.merge(parts[1])
    merged.merge(parts[2])
    assert len(merged) == len(whole) == len(y)
    assert merged.roc_auc() == whole.roc_auc()
    close(merged.roc_auc(), sk.roc_auc_score(y, s, sample_weight=w))
    assert merged.average_precision() == whole.average_precision()
    for a, b in zip(merged.roc_curve(), whole.roc_curve()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(merged.precision_recall_curve(), sk.precision_recall_curve(y, s, sample_weight=w)):
        close(a, b)

    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, 600)
    probs = rng.random((600, 3)) + np.eye(3)[labels]
    probs = probs / probs.sum(axis=1, keepdims=True)
    one = km.ClassificationAccumulator(3)
    one.update(labels, probs)
    shards = [km.ClassificationAccumulator(3) for _ in range(3)]
    for acc, idx in zip(shards, np.array_split(np.arange(600), 3)):
        acc.update(labels[idx], np.ascontiguousarray(probs[idx]))
    shards[0].merge(shards[1])
    shards[0].merge(shards[2])
    assert shards[0].compute() == one.compute()
    close(one.compute()["roc_auc_ovr_macro"], sk.roc_auc_score(labels, probs, multi_class="ovr"))
    close(one.compute()["macro_f1"], sk.f1_score(labels, probs.argmax(axis=1), average="macro"))

    t = rng.integers(0, 4, 5000)
    p = np.where(rng.random(5000) < 0.8, t, rng.integers(0, 4, 5000))
    seg = km.SegmentationAccumulator(4)
    seg.update(t, p)
    halves = [km.SegmentationAccumulator(4), km.SegmentationAccumulator(4)]
    halves[0].update(t[:2500], p[:2500])
    halves[1].update(t[2500:], p[2500:])
    halves[0].merge(halves[1])
    assert halves[0].compute() == seg.compute()
    close(seg.compute()["iou_per_class"], sk.jaccard_score(t, p, average=None))


def test_bad_input_raises_value_error_with_a_message():
    with pytest.raises(ValueError, match="finite|NaN|nan"):
        km.roc_auc_score([0, 1, 1], [0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="3|2"):
        km.roc_auc_score([0, 1, 1], [0.1, 0.3])
    with pytest.raises(ValueError, match="weight"):
        km.roc_auc_score([0, 1, 1], [0.1, 0.2, 0.3], sample_weight=[1, -1, 1])
    with pytest.raises(ValueError, match="1-D"):
        km.f1_score([[0, 1]], [[0, 1]])
    acc = km.BinaryAccumulator()
    with pytest.raises(ValueError):
        acc.update(np.array([True, False]), np.array([0.1, np.inf]))
    assert len(acc) == 0


def test_distinct_values_scan_finds_every_value_up_to_the_limit():
    from kestrel import _kestrel

    y = np.zeros(20000)
    y[1] = 1.0
    y[15000] = 2.0  # a third value in a later block
    assert _kestrel.distinct_values(y, 5) == [0.0, 1.0, 2.0]
    assert _kestrel.distinct_values(y, 2) == [0.0, 1.0]
    got = _kestrel.distinct_values(np.array([1.0, np.nan, 1.0, np.nan, 0.0]), 5)
    assert got[:2] == [0.0, 1.0] and np.isnan(got[2]) and len(got) == 3
    assert _kestrel.distinct_values(np.array([]), 3) == []
