"""CTC loss and decoding (nn/ctc.py, nn/kernels/ctc.py), checked four ways:

- by brute force: on tiny T and C every path is enumerated, collapsed and summed, which is the
  definition of p(l | x) that the alpha/beta recursions compute in O(T S) instead of O(C^T);
- by central differences in float64 (tests/gradcheck.py), for every reduction;
- against PyTorch's ctc_loss in float32 (loss within 1e-5, gradients within 1e-4, relative to
  the largest torch value) for varied lengths, repeated labels, empty targets and blank index;
- the Numba kernels against their NumPy twins in nn.kernels.reference.
"""
import itertools
import math

import numpy as np
import pytest

try:
    from gradcheck import check_gradients
except ImportError:  # tests/ imported as a package
    from tests.gradcheck import check_gradients
from nn.ctc import (CTCLoss, beam_search_decode, ctc_backward, ctc_forward, extend_targets,
                    greedy_decode, log_softmax_frames, prefix_beam_search, warm_up)
from nn.kernels import ctc as ctc_kernels
from nn.kernels import reference

LOSS_TOL = 1e-5
GRAD_TOL = 1e-4


# ----------------------------------------------------------------------------- helpers

def collapse(path, blank):
    """B: merge repeated classes, then drop blanks (written independently of the code under test)."""
    return tuple(label for label, _ in itertools.groupby(path) if label != blank)


def labelling_probabilities(probabilities, blank):
    """{labelling: p(labelling | x)} for one sample's probabilities (T, C), by summing every one
    of the C^T paths."""
    steps, classes = probabilities.shape
    totals = {}
    for path in itertools.product(range(classes), repeat=steps):
        p = math.prod(probabilities[t, k] for t, k in enumerate(path))
        labelling = collapse(path, blank)
        totals[labelling] = totals.get(labelling, 0.0) + p
    return totals


def random_case(rng, n_batch, steps, classes, target_lengths, input_lengths, dtype, blank=0,
                repeat=False):
    """(logits (N, T, C), padded targets (N, S), input_lengths, target_lengths); labels drawn
    from the non-blank classes, with runs of equal labels when ``repeat``."""
    logits = rng.standard_normal((n_batch, steps, classes)).astype(dtype)
    labels = np.array([k for k in range(classes) if k != blank])
    width = max(max(target_lengths), 1)
    targets = rng.choice(labels, size=(n_batch, width))
    if repeat:
        targets[:, 1::2] = targets[:, 0::2][:, :targets[:, 1::2].shape[1]]
    return (logits, targets, np.array(input_lengths, dtype=np.int64),
            np.array(target_lengths, dtype=np.int64))


# ----------------------------------------------------------------------------- the definition

@pytest.mark.parametrize("blank", [0, 2])
def test_loss_is_minus_log_of_the_sum_over_all_paths(blank):
    """T = 5, C = 3: 243 paths per sample, against the loss of every labelling they spell."""
    rng = np.random.default_rng(1)
    steps, classes = 5, 3
    logits = rng.standard_normal((1, steps, classes))
    probabilities = np.exp(log_softmax_frames(logits))[0]
    totals = labelling_probabilities(probabilities, blank)
    assert math.isclose(sum(totals.values()), 1.0, rel_tol=1e-12)
    assert len(totals) > 20
    for labelling, p in totals.items():
        targets = np.array([list(labelling) or [0]])           # an empty row is never read
        loss, _ = ctc_forward(logits, targets, target_lengths=[len(labelling)], blank=blank,
                              reduction="sum")
        assert math.isclose(loss, -math.log(p), rel_tol=1e-12, abs_tol=1e-12), labelling


def test_alpha_times_beta_sums_to_the_likelihood_at_every_frame():
    """sum_s alpha_t(s) beta_t(s) = p(l | x) for every t < T_n: each path passes one state per frame."""
    rng = np.random.default_rng(2)
    logits, targets, input_lengths, target_lengths = random_case(
        rng, 4, 9, 5, [3, 0, 4, 2], [9, 6, 8, 9], np.float64, repeat=True)
    _, cache = ctc_forward(logits, targets, input_lengths, target_lengths, reduction="none")
    log_beta = ctc_kernels.ctc_log_beta(cache.log_probs, cache.extended, input_lengths,
                                        cache.extended_lengths)
    for n in range(4):
        for t in range(input_lengths[n]):
            per_frame = np.logaddexp.reduce(cache.log_alpha[n, t] + log_beta[n, t])
            assert per_frame == pytest.approx(cache.log_likelihood[n], abs=1e-12)


def test_extended_targets_interleave_blanks():
    extended, lengths = extend_targets(np.array([[3, 3, 1], [2, 9, 9]]), np.array([3, 1]), blank=0)
    np.testing.assert_array_equal(extended, [[0, 3, 0, 3, 0, 1, 0], [0, 2, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(lengths, [7, 3])


def test_padding_frames_are_ignored_and_get_no_gradient():
    rng = np.random.default_rng(3)
    logits, targets, input_lengths, target_lengths = random_case(
        rng, 2, 8, 4, [2, 3], [5, 8], np.float64)
    loss, cache = ctc_forward(logits, targets, input_lengths, target_lengths)
    dlogits = ctc_backward(cache)
    assert np.all(dlogits[0, 5:] == 0) and np.abs(dlogits[0, :5]).min() > 0
    changed = logits.copy()
    changed[0, 5:] = rng.standard_normal((3, 4)) * 10
    assert ctc_forward(changed, targets, input_lengths, target_lengths)[0] == loss


# ----------------------------------------------------------------------------- finite differences

GRADIENT_CASES = {
    "varied lengths": (3, 7, 5, [2, 3, 1], [7, 5, 6], False),
    "repeated labels": (2, 8, 3, [4, 3], [8, 7], True),
    "empty target": (2, 5, 4, [0, 2], [5, 4], False),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_gradients_by_finite_differences(case, reduction):
    rng = np.random.default_rng(4)
    n_batch, steps, classes, target_lengths, input_lengths, repeat = GRADIENT_CASES[case]
    logits, targets, input_lengths, target_lengths = random_case(
        rng, n_batch, steps, classes, target_lengths, input_lengths, np.float64, repeat=repeat)
    dloss = rng.standard_normal(n_batch) if reduction == "none" else rng.standard_normal()

    def loss_of(z):
        return ctc_forward(z, targets, input_lengths, target_lengths, reduction=reduction)[0]

    _, cache = ctc_forward(logits, targets, input_lengths, target_lengths, reduction=reduction)
    errors = check_gradients(loss_of, [logits], [ctc_backward(cache, dloss)], dloss, ["logits"])
    assert errors[0] < 1e-6


# ----------------------------------------------------------------------------- PyTorch

def torch_ctc(logits, targets, input_lengths, target_lengths, blank, reduction, zero_infinity=False):
    """PyTorch's loss and dloss/dlogits (N, T, C) for the same float32 logits."""
    torch = pytest.importorskip("torch", reason="PyTorch (the test extra) is not installed")
    logits_t = torch.tensor(logits.transpose(1, 0, 2), requires_grad=True)        # (T, N, C)
    loss = torch.nn.functional.ctc_loss(
        logits_t.log_softmax(2), torch.as_tensor(targets), torch.as_tensor(input_lengths),
        torch.as_tensor(target_lengths), blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    upstream = torch.ones_like(loss)
    loss.backward(upstream)
    return loss.detach().numpy(), logits_t.grad.numpy().transpose(1, 0, 2)


def assert_close(ours, theirs, tol, what):
    """max|ours - theirs| / max|theirs| < tol, shapes equal."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch's {theirs.shape}"
    scale = max(float(np.abs(theirs).max()), 1e-30)
    error = float(np.abs(ours - theirs).max()) / scale
    assert error < tol, f"{what}: relative difference {error:.3e} >= {tol:.0e}"
    return error


TORCH_CASES = {
    # name: (N, T, C, target_lengths, input_lengths, blank, repeated labels)
    "varied lengths": (4, 12, 6, [3, 5, 1, 4], [12, 9, 4, 10], 0, False),
    "repeated labels": (3, 10, 4, [4, 2, 3], [10, 8, 9], 0, True),
    "empty targets": (3, 6, 5, [0, 2, 0], [6, 3, 1], 0, False),
    "blank last, digits": (5, 30, 11, [6, 2, 1, 4, 3], [30, 17, 5, 22, 12], 10, False),
    "reader-sized batch": (16, 42, 11, list(range(1, 7)) * 2 + [0, 6, 6, 5], [42] * 16, 10, True),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_against_torch(case, reduction):
    rng = np.random.default_rng(5)
    n_batch, steps, classes, target_lengths, input_lengths, blank, repeat = TORCH_CASES[case]
    logits, targets, input_lengths, target_lengths = random_case(
        rng, n_batch, steps, classes, target_lengths, input_lengths, np.float32, blank, repeat)
    loss, cache = ctc_forward(logits, targets, input_lengths, target_lengths, blank, reduction)
    dlogits = ctc_backward(cache)
    assert dlogits.dtype == np.float32
    torch_loss, torch_grad = torch_ctc(logits, targets, input_lengths, target_lengths, blank, reduction)
    assert_close(loss, torch_loss, LOSS_TOL, "loss")
    assert_close(dlogits, torch_grad, GRAD_TOL, "dlogits")


def test_digit_strings_with_repeats_against_torch():
    """"11", "100", "1001", "7" with blank = 10, targets concatenated, as the reader will train."""
    rng = np.random.default_rng(6)
    strings = ["11", "100", "1001", "7", "000000"]
    targets = np.array([int(d) for s in strings for d in s])
    target_lengths = np.array([len(s) for s in strings])
    input_lengths = np.array([3, 5, 6, 2, 12])       # "11" needs 3 frames, "1001" 5, "000000" 11
    logits = rng.standard_normal((5, 12, 11)).astype(np.float32) * 3
    loss, cache = ctc_forward(logits, targets, input_lengths, target_lengths, blank=10,
                              reduction="none")
    assert np.all(np.isfinite(loss))
    torch_loss, torch_grad = torch_ctc(logits, targets, input_lengths, target_lengths, 10, "none")
    assert_close(loss, torch_loss, LOSS_TOL, "loss")
    assert_close(ctc_backward(cache), torch_grad, GRAD_TOL, "dlogits")


# ----------------------------------------------------------------------------- impossible alignments

def impossible_case():
    """Sample 0 fits; sample 1 is "11" in 2 frames (needs 3); sample 2 has 3 labels in 2 frames."""
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((3, 4, 4)).astype(np.float32)
    targets = np.array([[1, 2, 0], [1, 1, 0], [1, 2, 3]])
    return logits, targets, np.array([4, 2, 2]), np.array([2, 2, 3])


def test_impossible_alignment_gives_inf_and_a_zero_gradient():
    logits, targets, input_lengths, target_lengths = impossible_case()
    losses, cache = ctc_forward(logits, targets, input_lengths, target_lengths, reduction="none")
    assert np.isfinite(losses[0]) and np.isposinf(losses[1]) and np.isposinf(losses[2])
    dlogits = ctc_backward(cache)
    assert np.all(np.isfinite(dlogits))
    assert np.all(dlogits[1:] == 0)            # PyTorch's gradient here is NaN
    torch_loss, torch_grad = torch_ctc(logits, targets, input_lengths, target_lengths, 0, "none")
    assert np.isposinf(torch_loss[1:]).all()
    assert_close(dlogits[0], torch_grad[0], GRAD_TOL, "the possible sample's dlogits")
    assert ctc_forward(logits, targets, input_lengths, target_lengths, reduction="mean")[0] == math.inf


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_zero_infinity_matches_torch(reduction):
    logits, targets, input_lengths, target_lengths = impossible_case()
    loss, cache = ctc_forward(logits, targets, input_lengths, target_lengths, reduction=reduction,
                              zero_infinity=True)
    dlogits = ctc_backward(cache)
    torch_loss, torch_grad = torch_ctc(logits, targets, input_lengths, target_lengths, 0, reduction,
                                       zero_infinity=True)
    assert np.all(np.isfinite(loss)) and np.all(dlogits[1:] == 0)
    assert_close(loss, torch_loss, LOSS_TOL, "loss")
    assert_close(dlogits, torch_grad, GRAD_TOL, "dlogits")


def test_no_frames_reads_only_the_empty_labelling():
    logits = np.zeros((2, 3, 4))
    losses, cache = ctc_forward(logits, np.array([[0], [2]]), [0, 0], [0, 1], reduction="none")
    assert losses[0] == 0 and np.isposinf(losses[1])
    assert np.all(ctc_backward(cache) == 0)


# ----------------------------------------------------------------------------- kernels and twins

@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_kernels_match_their_numpy_twins(dtype, tol):
    rng = np.random.default_rng(8)
    logits, targets, input_lengths, target_lengths = random_case(
        rng, 6, 11, 5, [3, 0, 5, 2, 4, 5], [11, 7, 10, 1, 0, 5], dtype, repeat=True)
    log_probs = log_softmax_frames(logits)
    extended, extended_lengths = extend_targets(targets, target_lengths, 0)
    arrays = (log_probs, extended, input_lengths, extended_lengths)
    for name in ("ctc_log_alpha", "ctc_log_beta"):
        ours, twin = getattr(ctc_kernels, name)(*arrays), getattr(reference, name)(*arrays)
        assert ours.dtype == dtype
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(twin), err_msg=name)
        assert np.isinf(ours).any() and np.isfinite(ours).any()
        finite = np.isfinite(twin)
        np.testing.assert_allclose(ours[finite], twin[finite], rtol=tol, atol=tol, err_msg=name)
    _, cache = ctc_forward(logits, targets, input_lengths, target_lengths, reduction="none")
    scale = rng.standard_normal(6).astype(dtype)
    scale[2] = 0
    log_beta = ctc_kernels.ctc_log_beta(*arrays)
    gradient_args = (*arrays, cache.log_alpha, log_beta, cache.log_likelihood, scale)
    ours = ctc_kernels.ctc_logits_gradient(*gradient_args)
    twin = reference.ctc_logits_gradient(*gradient_args)
    assert np.abs(ours).max() > 0.1 and np.all(ours[2] == 0) and np.all(ours[4] == 0)
    np.testing.assert_allclose(ours, twin, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- the loss object

def test_loss_object_equals_the_pair_and_backward_twice_is_the_same():
    rng = np.random.default_rng(9)
    logits, targets, input_lengths, target_lengths = random_case(
        rng, 3, 8, 5, [2, 3, 1], [8, 6, 5], np.float32)
    criterion = CTCLoss(blank=0, reduction="mean")
    loss = criterion.forward(logits, targets, input_lengths, target_lengths)
    pair_loss, cache = ctc_forward(logits, targets, input_lengths, target_lengths)
    assert loss == pair_loss
    first = criterion.backward()
    np.testing.assert_array_equal(first, ctc_backward(cache))
    np.testing.assert_array_equal(criterion.backward(), first)
    np.testing.assert_allclose(criterion.backward(2.0), 2 * first, rtol=1e-6)


def test_warm_up_compiles_both_dtypes():
    for dtype in (np.float32, np.float64):
        warm_up(dtype)
        assert ctc_kernels.ctc_log_alpha.signatures and ctc_kernels.ctc_logits_gradient.signatures
    dtypes = {signature[0].dtype for signature in ctc_kernels.ctc_log_beta.signatures}
    assert {str(dtype) for dtype in dtypes} >= {"float32", "float64"}


def test_descending_the_gradient_teaches_free_logits_to_spell_the_targets():
    """The gradient points the right way: plain gradient descent on the logits themselves
    (float32) drives the loss towards 0, and then greedy decoding reads the targets, repeats
    included, wherever the alignment put them."""
    rng = np.random.default_rng(11)
    logits = (rng.standard_normal((3, 8, 5)) * 0.1).astype(np.float32)
    targets, target_lengths = np.array([[1, 1, 2], [3, 0, 0], [4, 2, 4]]), np.array([3, 1, 3])
    first = None
    for _ in range(300):
        loss, cache = ctc_forward(logits, targets, target_lengths=target_lengths, reduction="sum")
        first = loss if first is None else first
        logits -= 1.0 * ctc_backward(cache)
    assert first > 10 and loss < 0.1
    assert greedy_decode(logits)[0] == [[1, 1, 2], [3], [4, 2, 4]]


# ----------------------------------------------------------------------------- decoding

def scores_from_paths(best_path, classes, confidence=0.9):
    """Log-probabilities (1, T, C) whose most probable class at frame t is best_path[t]."""
    steps = len(best_path)
    probabilities = np.full((steps, classes), (1 - confidence) / (classes - 1))
    probabilities[np.arange(steps), best_path] = confidence
    return np.log(probabilities)[None]


def test_greedy_merges_repeats_and_drops_blanks():
    path = [0, 1, 1, 0, 1, 2, 2, 0, 0, 3]
    logits = scores_from_paths(path, 4)
    labellings, log_probabilities = greedy_decode(logits)
    assert labellings == [[1, 1, 2, 3]]
    assert log_probabilities[0] == pytest.approx(len(path) * math.log(0.9))
    assert greedy_decode(logits, input_lengths=[5])[0] == [[1, 1]]          # 0 1 1 0 1
    assert greedy_decode(logits, blank=1)[0] == [[0, 0, 2, 0, 3]]


def test_beam_search_finds_what_greedy_misses():
    """Two frames of p(blank) = 0.6, p(a) = 0.4: the best path is "--" (0.36), so greedy reads
    nothing, but "a" is spelled by "aa", "a-" and "-a": 0.16 + 0.24 + 0.24 = 0.64."""
    logits = np.log(np.array([[[0.6, 0.4], [0.6, 0.4]]]))
    assert greedy_decode(logits)[0] == [[]]
    labellings, log_probabilities = beam_search_decode(logits, beam_width=2)
    assert labellings == [[1]]
    assert log_probabilities[0] == pytest.approx(math.log(0.64), abs=1e-12)


def test_beam_search_agrees_with_greedy_on_confident_scores_and_respects_lengths():
    """When every frame is 95 % sure, the best path's labelling is the best labelling, and the
    labelling is at least as probable as its best path (other paths spell it too)."""
    paths = [[0, 3, 3, 0, 0, 1, 0, 1, 2, 2], [2, 2, 2, 0, 2, 0, 0, 0, 3, 0]]
    logits = np.concatenate([scores_from_paths(path, 4, confidence=0.95) for path in paths])
    greedy, path_log_probabilities = greedy_decode(logits)
    beam, log_probabilities = beam_search_decode(logits, beam_width=4)
    assert beam == greedy == [[3, 1, 1, 2], [2, 2, 3]]
    assert np.all(log_probabilities > path_log_probabilities)
    truncated, _ = beam_search_decode(logits, beam_width=4, input_lengths=[3, 10])
    assert truncated == [[3], [2, 2, 3]]


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_a_nan_score_makes_the_loss_nan_not_a_number_that_looks_fine():
    logits = np.zeros((1, 4, 3))
    logits[0, 2, 1] = np.nan
    assert math.isnan(ctc_forward(logits, np.array([[1, 2]]))[0])


@pytest.mark.parametrize("steps, classes, blank", [(5, 3, 0), (4, 4, 0), (6, 3, 2), (3, 5, 1)])
def test_beam_search_finds_the_most_probable_labelling(steps, classes, blank):
    """Against brute force on peaked random distributions; the beam's log-probability is the
    labelling's exact one, and equals minus its CTC loss."""
    rng = np.random.default_rng(10 + steps)
    for _ in range(10):
        log_probs = log_softmax_frames(rng.standard_normal((1, steps, classes)) * 2)
        totals = labelling_probabilities(np.exp(log_probs[0]), blank)
        best = max(totals, key=totals.get)
        labellings, log_probabilities = beam_search_decode(log_probs, beam_width=classes ** steps,
                                                           blank=blank)
        assert tuple(labellings[0]) == best
        assert log_probabilities[0] == pytest.approx(math.log(totals[best]), abs=1e-10)
        if best:
            loss, _ = ctc_forward(log_probs, np.array([best]), blank=blank, reduction="sum")
            assert -loss == pytest.approx(log_probabilities[0], abs=1e-10)
        assert prefix_beam_search(log_probs[0], 8, blank)[0] == best


# ----------------------------------------------------------------------------- bad input

def bad_input_cases():
    logits = np.zeros((2, 5, 4), dtype=np.float32)
    targets = np.array([[1, 2], [3, 3]])
    lengths = np.array([5, 5])
    return [
        ("label out of range", dict(targets=np.array([[1, 4], [3, 3]])), "targets[0, 1] = 4 is outside"),
        ("negative label", dict(targets=np.array([[1, 2], [-1, 3]])), "targets[1, 0] = -1 is outside"),
        ("blank inside", dict(targets=np.array([[1, 0], [3, 3]])), "targets[0, 1] is the blank (0)"),
        ("blank 3 inside", dict(targets=targets, blank=3), "targets[1, 0] is the blank (3)"),
        ("target longer than padded", dict(target_lengths=[2, 3]), "target_lengths[1] = 3 is outside [0, 2]"),
        ("lengths do not sum", dict(targets=np.array([1, 2, 3]), target_lengths=[2, 2]),
         "sum to 4 but the concatenated targets hold 3"),
        ("concatenated without lengths", dict(targets=np.array([1, 2, 3])), "target_lengths is required"),
        ("targets 3-D", dict(targets=np.ones((2, 2, 1), dtype=int)), "targets must be (N, S)"),
        ("targets wrong batch", dict(targets=np.ones((3, 2), dtype=int)),
         "targets must have shape (N, S) with N = 2"),
        ("float targets", dict(targets=targets.astype(float)), "targets must be integers"),
        ("logits 2-D", dict(logits=logits[0]), "logits must be a float array (N, T, C)"),
        ("integer logits", dict(logits=logits.astype(int)), "logits must be a float array"),
        ("float16 logits", dict(logits=logits.astype(np.float16)), "logits must be float32"),
        ("blank outside", dict(blank=4), "blank 4 is not one of the C = 4 classes"),
        ("blank not an integer", dict(blank=1.5), "blank 1.5 is not one of"),
        ("input longer than T", dict(input_lengths=[5, 6]), "input_lengths[1] = 6 is outside [0, 5]"),
        ("input_lengths shape", dict(input_lengths=[5]), "input_lengths must have shape (2,)"),
        ("reduction", dict(reduction="average"), "reduction must be one of"),
    ], dict(logits=logits, targets=targets, input_lengths=lengths, target_lengths=None)


@pytest.mark.parametrize("index", range(len(bad_input_cases()[0])))
def test_bad_input_raises_a_one_line_value_error(index):
    cases, good = bad_input_cases()
    name, change, message = cases[index]
    arguments = {**good, **change}
    ctc_forward(**good)                                       # the unchanged input is fine
    with pytest.raises(ValueError) as error:
        ctc_forward(**arguments)
    assert message in str(error.value), name
    assert "\n" not in str(error.value)


def test_decoders_and_backward_check_their_input():
    _, cache = ctc_forward(np.zeros((2, 3, 4)), np.array([[1], [2]]), reduction="none")
    with pytest.raises(ValueError, match=r"dloss of a 'none' CTC loss must have shape \(2,\)"):
        ctc_backward(cache, 1.0)
    with pytest.raises(ValueError, match="beam_width must be a positive integer"):
        beam_search_decode(np.zeros((1, 3, 4)), beam_width=0)
    with pytest.raises(ValueError, match="logits must be a float array"):
        greedy_decode(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"input_lengths\[0\] = 4 is outside \[0, 3\]"):
        greedy_decode(np.zeros((1, 3, 4)), input_lengths=[4])
