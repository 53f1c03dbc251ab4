"""gpicl.InContextClassifier (scikit-learn API over a meta-trained model) and export_model: the
label mapping, masking of unused label slots, the ensemble over long contexts, batched and
cached-context predictions equal to one full sequence per query, clear errors, byte-identical
exports, and scikit-learn's own estimator checks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.utils.estimator_checks import check_estimator

import gpicl
from gpicl import classifier as clf_module
from gpicl.augment import NUM_CLASSES
from gpicl.classifier import (
    InContextClassifier,
    cached_query_logits,
    context_cache,
    export_model,
    load_model,
    masked_slot_proba,
)
from gpicl.io import load_torch, save_torch
from gpicl.models import build_model
from tests.test_train import run_config

torch.set_num_threads(1)

SEQ_LEN = 12  # tests/test_train.py's tiny run: 11 context examples + the query


def write_model(path, model_cfg=None, seed=0):
    """A tiny untrained model, saved the way gpicl.train saves a finished run's model.pt."""
    cfg = run_config(seq_len=SEQ_LEN)
    if model_cfg is not None:
        cfg["model"] = model_cfg
    torch.manual_seed(seed)
    model = build_model(cfg["model"], 16, SEQ_LEN)  # r4c1: 16 inputs
    fingerprint = {"config": "c" * 64, "cache": "d" * 64, "code": "e" * 64, "torch": "x"}
    save_torch({"model": model.state_dict(), "config": cfg, "fingerprint": fingerprint}, path)
    return str(path)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "model.pt")


def data(n=30, d=5, classes=("a", "b", "c"), seed=0):
    rng = np.random.default_rng(seed)
    y = np.asarray(classes, dtype=object)[rng.integers(0, len(classes), n)]
    y[: len(classes)] = classes  # every class present
    return rng.normal(size=(n, d)) * 3 + 1, y


def test_importable_from_the_package():
    assert gpicl.InContextClassifier is InContextClassifier


def test_predictions_are_deterministic_given_random_state(model_path):
    X, y = data()
    a = InContextClassifier(model_path, random_state=3).fit(X, y).predict_proba(X)
    b = InContextClassifier(model_path, random_state=3).fit(X, y).predict_proba(X)
    c = InContextClassifier(model_path, random_state=4).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_probability_rows_sum_to_one_over_the_context_classes(model_path):
    X, y = data(classes=("a", "b", "c"))
    proba = InContextClassifier(model_path).fit(X, y).predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_unused_label_slots_get_exactly_zero_probability():
    logits = torch.randn(5, NUM_CLASSES) * 10
    p = masked_slot_proba(logits, np.array([7, 2, 4]))
    unused = [s for s in range(NUM_CLASSES) if s not in (7, 2, 4)]
    assert (p[:, unused] == 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(5))
    torch.testing.assert_close(p[:, [2, 4, 7]], torch.softmax(logits[:, [2, 4, 7]], -1))


class PreviousLabelModel(nn.Module):
    """Predicts, at every position, the label slot carried by its token (the previous label)."""

    def forward(self, tokens):
        return 20.0 * tokens[..., -NUM_CLASSES:]


def test_string_labels_map_to_slots_and_back(model_path):
    """With a model that repeats the previous label, each query is predicted as the class of
    the last context example in the member's order: the class -> slot -> class round trip."""
    X, y = data(n=8, classes=("cat", "dog", "emu", "owl"))
    clf = InContextClassifier(model_path, n_estimators=1).fit(X, y)
    clf.model_ = PreviousLabelModel()  # not a Transformer: the full-sequence path
    order = clf.members_[0][0]
    last = y[order[-1]]
    assert list(clf.classes_) == ["cat", "dog", "emu", "owl"]
    assert (clf.predict(X[:4]) == last).all()
    proba = clf.predict_proba(X[:4])
    assert (proba[:, list(clf.classes_).index(last)] > 0.99).all()


def test_renaming_labels_in_the_same_order_changes_nothing(model_path):
    X, y = data(classes=("a", "b", "c"))
    as_int = np.array([{"a": 10, "b": 20, "c": 30}[v] for v in y])
    p_str = InContextClassifier(model_path).fit(X, y).predict_proba(X)
    fitted = InContextClassifier(model_path).fit(X, as_int)
    assert list(fitted.classes_) == [10, 20, 30]
    assert np.array_equal(p_str, fitted.predict_proba(X))
    assert set(fitted.predict(X)) <= {10, 20, 30}


@pytest.mark.parametrize("d", [1, 16, 50])
def test_any_number_of_features_is_projected_to_the_model_input(model_path, d):
    X, y = data(d=d)
    X[:, 0] = 5.0  # a constant feature: z-normalised to 0, not divided by zero
    clf = InContextClassifier(model_path).fit(X, y)
    assert clf.n_features_in_ == d
    assert all(proj.shape == (d, 16) for _, proj, _ in clf.members_)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_long_context_is_an_ensemble_of_random_subsets_with_every_class(model_path):
    X, y = data(n=40, classes=("a", "b", "c", "d"))
    clf = InContextClassifier(model_path, n_estimators=5).fit(X, y)
    orders = [order for order, _, _ in clf.members_]
    for order in orders:
        assert len(order) == SEQ_LEN - 1 == len(set(order))
        assert set(y[order]) == {"a", "b", "c", "d"}
    assert len({tuple(sorted(o)) for o in orders}) > 1  # different subsets
    perms = {tuple(slots) for _, _, slots in clf.members_}
    assert len(perms) > 1 and all(len(set(p)) == 4 for p in perms)
    assert clf.predict_proba(X).shape == (40, 4)


def test_short_context_is_used_whole_in_each_members_order(model_path):
    X, y = data(n=9)
    clf = InContextClassifier(model_path, n_estimators=3).fit(X, y)
    for order, _, _ in clf.members_:
        assert sorted(order) == list(range(9))


def test_batched_predictions_equal_one_query_at_a_time(model_path):
    X, y = data(n=30)
    for cache in (True, False):
        clf = InContextClassifier(model_path, cache_context=cache, batch_size=7).fit(X, y)
        batched = clf.predict_proba(X)
        single = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(len(X))])
        np.testing.assert_allclose(batched, single, rtol=0, atol=1e-6)


def test_cached_context_predictions_equal_full_sequences(model_path):
    X, y = data(n=30)
    cached = InContextClassifier(model_path, cache_context=True).fit(X, y).predict_proba(X)
    full = InContextClassifier(model_path, cache_context=False).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(cached, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("context_len", [1, 5, SEQ_LEN - 1])
def test_cached_query_logits_equal_the_models_last_position(context_len):
    torch.manual_seed(1)
    model = build_model(
        {"type": "transformer", "width": 16, "layers": 2, "heads": 2, "key_size": 4},
        16,
        SEQ_LEN,
    ).eval()
    context = torch.randn(context_len, 26)
    queries = torch.randn(6, 26)
    cache = context_cache(model, context)
    seqs = torch.cat([context.expand(6, -1, -1), queries[:, None]], dim=1)
    with torch.no_grad():
        expected = model(seqs)[:, -1]
    torch.testing.assert_close(cached_query_logits(model, cache, queries), expected)


def test_other_model_types_use_full_sequences(tmp_path):
    path = write_model(tmp_path / "lstm.pt", {"type": "lstm", "hidden_size": 8})
    X, y = data()
    proba = InContextClassifier(path).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _nan():
    X, y = data()
    X[3, 1] = np.nan
    return X, y


def _inf():
    X, y = data()
    X[0, 0] = np.inf
    return X, y


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_nan, "NaN"),
        (_inf, "infinity"),
        (lambda: data(n=40, classes=tuple("abcdefghijk")), "11 classes.*at most 10"),
        (lambda: (np.empty((0, 3)), np.array([])), "0 sample"),
        (lambda: data(classes=("a",)), "1 class"),
        (lambda: (data()[0], data()[1][:-1]), "inconsistent numbers of samples"),
    ],
    ids=["nan", "inf", "11-classes", "empty", "one-class", "length-mismatch"],
)
def test_bad_context_is_refused_by_name(model_path, make, match):
    X, y = make()
    with pytest.raises(ValueError, match=match):
        InContextClassifier(model_path).fit(X, y)


def test_queries_with_other_feature_count_or_nan_are_refused(model_path):
    X, y = data(d=5)
    clf = InContextClassifier(model_path).fit(X, y)
    with pytest.raises(
        ValueError, match="X has 4 features, but InContextClassifier is expecting 5"
    ):
        clf.predict(X[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((1, 5), np.nan))


@pytest.mark.parametrize("param", [{"n_estimators": 0}, {"batch_size": 1.5}])
def test_bad_parameters_are_refused_at_fit(model_path, param):
    with pytest.raises(ValueError, match=next(iter(param))):
        InContextClassifier(model_path, **param).fit(*data())


def test_missing_default_checkpoint_says_how_to_make_it(monkeypatch, tmp_path):
    class NoPackageFiles:
        @staticmethod
        def files(package):
            return tmp_path

    monkeypatch.setattr(clf_module, "resources", NoPackageFiles)
    with pytest.raises(FileNotFoundError, match="gpicl export") as info:
        InContextClassifier().fit(*data())
    assert "snakemake --cores all export" in str(info.value)


def test_not_a_model_file_is_refused_by_name(tmp_path):
    path = tmp_path / "cache.pt"
    save_torch({"model": {}, "config": {"tier": "cpu"}}, path)
    with pytest.raises(ValueError, match="not a trained model"):
        load_model(path)


def test_fitted_estimator_pickles(model_path):
    X, y = data()
    clf = InContextClassifier(model_path).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(clf.predict_proba(X), again.predict_proba(X))


# --------------------------------------------------------------------------- export
def test_export_is_byte_identical_and_predicts_like_the_run(model_path, tmp_path):
    info = export_model(model_path, tmp_path / "a.pt")
    export_model(model_path, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    saved = load_torch(tmp_path / "a.pt")
    assert saved["dtype"] == info["dtype"] == "float32"  # a tiny model stays fp32
    assert (saved["input_size"], saved["seq_len"], saved["num_classes"]) == (16, SEQ_LEN, 10)
    assert saved["fingerprint"]["config"] == "c" * 64
    assert saved["config"]["name"] == "test/tiny-s0"
    assert len(saved["config_sha256"]) == len(saved["source_sha256"]) == 64
    X, y = data()
    run = InContextClassifier(model_path).fit(X, y).predict_proba(X)
    exported = InContextClassifier(str(tmp_path / "a.pt")).fit(X, y).predict_proba(X)
    assert np.array_equal(run, exported)


def test_export_over_one_megabyte_is_fp16(model_path, tmp_path, monkeypatch):
    monkeypatch.setattr(clf_module, "FP32_LIMIT_BYTES", 0)
    info = export_model(model_path, tmp_path / "half.pt")
    saved = load_torch(tmp_path / "half.pt")
    assert info["dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in saved["model"].values())
    X, y = data()
    half = InContextClassifier(str(tmp_path / "half.pt")).fit(X, y).predict_proba(X)
    full = InContextClassifier(model_path).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(half, full, atol=1e-2)


# --------------------------------------------------------------------------- scikit-learn
EXPECTED_FAILURES = {
    # No check uses more than 10 classes; the one that fails asks for training accuracy above
    # 0.83 on blobs, which the untrained test model cannot learn in context.
    "check_classifiers_train": "the untrained test model does not reach the accuracy bound",
}


def test_scikit_learn_estimator_checks(model_path):
    results = check_estimator(
        InContextClassifier(model_path, n_estimators=2),
        expected_failed_checks=EXPECTED_FAILURES,
        on_skip=None,
        on_fail=None,
    )
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert not failed
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert xfailed == set(EXPECTED_FAILURES)  # each listed check does fail
    assert sum(r["status"] == "passed" for r in results) > 30
