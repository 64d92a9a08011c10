"""ParityFold / ParityUnfold (bayesoof/physics/parity_fold.py): the fold of LatticeDFT.

Checked against an independent construction (the fold written as an explicit ±1 matrix
acting on the flattened pair), in both layouts, even and odd lengths, with and without a
batch axis, on strided inputs; C code, NumPy ``perform`` and JAX agree; each Op is the
other's transpose and their gradients pass ``verify_grad``; vectorisation batches them
without a Blockwise loop.  The arithmetic is one addition or subtraction per output, so
the C code and NumPy agree exactly (asserted bit for bit).
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesoof.physics.parity_fold import (
    ParityFold,
    ParityUnfold,
    fold_plain,
    unfold_plain,
)

CASES = [(axis, n, batch) for axis in ("cols", "rows") for n in (6, 7) for batch in (None, 3)]


def _shape(axis, n, batch, other=5):
    core = (other, n) if axis == "cols" else (n, other)
    return core if batch is None else (batch, *core)


def _fold_matrix(axis, n, other=5) -> np.ndarray:
    """The fold as a matrix on [a.ravel(), b.ravel()] (one core item), entry by entry."""
    half, ne = n // 2, n - n // 2
    shape_in = (other, n) if axis == "cols" else (n, other)
    shape_out = (2 * other, n) if axis == "cols" else (n, 2 * other)
    size = other * n
    mat = np.zeros((2 * size, 2 * size))

    def at_in(which, o, j):  # index of a[o, j] (cols) / a[j, o] (rows) in the stacked input
        ij = (o, j) if axis == "cols" else (j, o)
        return which * size + np.ravel_multi_index(ij, shape_in)

    def at_out(block, o, j):  # block 0: the first block row (column); j along the parity axis
        ij = (block * other + o, j) if axis == "cols" else (j, block * other + o)
        return np.ravel_multi_index(ij, shape_out)

    for o in range(other):
        for j in range(half):
            lo, hi = j, n - 1 - j
            mat[at_out(0, o, j), [at_in(0, o, lo), at_in(0, o, hi)]] = 1, 1        # a_e
            mat[at_out(0, o, ne + j), [at_in(1, o, lo), at_in(1, o, hi)]] = 1, -1  # b_o
            mat[at_out(1, o, j), [at_in(1, o, lo), at_in(1, o, hi)]] = 1, 1        # b_e
            mat[at_out(1, o, ne + j), [at_in(0, o, lo), at_in(0, o, hi)]] = -1, 1  # -a_o
        if n % 2:
            mat[at_out(0, o, half), at_in(0, o, half)] = 1
            mat[at_out(1, o, half), at_in(1, o, half)] = 1
    return mat


def _fold_fn(axis, ndim, mode=None):
    a, b = (pt.tensor(dtype="float64", shape=(None,) * ndim) for _ in range(2))
    return pytensor.function([a, b], ParityFold(axis)(a, b), mode=mode)


def _unfold_fn(axis, ndim, mode=None):
    g = pt.tensor(dtype="float64", shape=(None,) * ndim)
    return pytensor.function([g], ParityUnfold(axis)(g), mode=mode)


@pytest.mark.parametrize("axis,n,batch", CASES)
def test_fold_and_unfold_against_the_explicit_matrix(axis, n, batch):
    rng = np.random.default_rng(n + 10 * (batch or 0))
    shape = _shape(axis, n, batch)
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    mat = _fold_matrix(axis, n)
    items = [(a, b)] if batch is None else list(zip(a, b, strict=True))
    expect = [(mat @ np.r_[x.ravel(), y.ravel()]) for x, y in items]
    out = _fold_fn(axis, len(shape))(a, b)
    got = [out] if batch is None else list(out)
    for e, g in zip(expect, got, strict=True):
        np.testing.assert_array_equal(g.ravel(), e)
    np.testing.assert_array_equal(fold_plain(a, b, axis), out)
    # the unfold is the transpose
    gout = rng.normal(size=out.shape)
    ga, gb = _unfold_fn(axis, len(shape))(gout)
    gitems = [gout] if batch is None else list(gout)
    for i, g in enumerate(gitems):
        back = mat.T @ g.ravel()
        size = back.size // 2
        got_a = ga if batch is None else ga[i]
        got_b = gb if batch is None else gb[i]
        np.testing.assert_allclose(got_a.ravel(), back[:size], rtol=0, atol=1e-15)
        np.testing.assert_allclose(got_b.ravel(), back[size:], rtol=0, atol=1e-15)
    ra, rb = unfold_plain(gout, axis)
    np.testing.assert_array_equal(ra, ga)
    np.testing.assert_array_equal(rb, gb)


@pytest.mark.parametrize("axis", ["cols", "rows"])
def test_strided_inputs_and_the_numpy_perform(axis):
    """Transposed and sliced views (the fit's g[:, :n]) read through their strides; the
    NumPy ``perform`` (Python linker) gives the same array."""
    rng = np.random.default_rng(4)
    shape = _shape(axis, 7, 3)
    a = np.swapaxes(np.ascontiguousarray(np.swapaxes(rng.normal(size=shape), -1, -2)), -1, -2)
    big = rng.normal(size=(3, 2 * shape[1], shape[2]))
    b = big[:, shape[1]:]  # a slice of a larger array, not contiguous
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    ref = fold_plain(np.ascontiguousarray(a), np.ascontiguousarray(b), axis)
    np.testing.assert_array_equal(_fold_fn(axis, 3)(a, b), ref)
    python = pytensor.compile.mode.Mode(linker="py", optimizer=None)
    np.testing.assert_array_equal(_fold_fn(axis, 3, python)(a, b), ref)
    g = np.swapaxes(np.ascontiguousarray(np.swapaxes(rng.normal(size=ref.shape), 0, 1)), 0, 1)
    c_out, py_out = _unfold_fn(axis, 3)(g), _unfold_fn(axis, 3, python)(g)
    for x, y in zip(c_out, py_out, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("axis,n", [("cols", 6), ("rows", 7)])
def test_verify_grad(axis, n):
    """Linear Ops: finite differences are exact up to rounding (eps 1e-7 on O(1) values,
    ~1e-8 error), far inside verify_grad's default tolerances; a wrong transpose is O(1)
    off.  Second order too: the gradient of ParityUnfold is ParityFold."""
    rng = np.random.default_rng(7)
    shape = _shape(axis, n, 2)
    pytensor.gradient.verify_grad(ParityFold(axis), [rng.normal(size=shape)] * 2, rng=rng)
    g = rng.normal(size=fold_plain(*[rng.normal(size=shape)] * 2, axis).shape)
    pytensor.gradient.verify_grad(lambda x: ParityUnfold(axis)(x)[0], [g], rng=rng)
    pytensor.gradient.verify_grad(lambda x: ParityUnfold(axis)(x)[1], [g], rng=rng)


def test_vectorize_without_a_blockwise_loop():
    """vectorize_graph (the fit's Jacobian over directions): one call per Op, the same
    numbers as one call per item; two batch axes are reshaped onto one; an input without
    the batch axis is broadcast."""
    from pytensor.graph.replace import vectorize_graph
    from pytensor.tensor.blockwise import Blockwise

    rng = np.random.default_rng(8)
    a, b = pt.matrix("a"), pt.matrix("b")
    out = ParityUnfold("rows")(ParityFold("cols")(a, b).T)[0]
    f1 = pytensor.function([a, b], out)
    ab = pt.tensor(dtype="float64", shape=(None, None, None, None))
    fb = pytensor.function([ab, b], vectorize_graph(out, {a: ab}))
    assert not any(isinstance(n.op, Blockwise) for n in fb.maker.fgraph.apply_nodes)
    xa, xb = rng.normal(size=(2, 3, 5, 6)), rng.normal(size=(5, 6))
    np.testing.assert_array_equal(fb(xa, xb), np.stack([[f1(x, xb) for x in row] for row in xa]))


def test_bad_inputs_say_what_was_expected():
    with pytest.raises(ValueError, match="axis must be one of"):
        ParityFold("diagonal")
    with pytest.raises(TypeError, match="float64 array of 2 or 3 dimensions"):
        ParityFold("cols")(pt.vector(), pt.vector())
    with pytest.raises(TypeError, match="float64"):
        ParityFold("cols")(pt.matrix(dtype="float32"), pt.matrix(dtype="float32"))
    with pytest.raises(ValueError, match="different shapes"):
        _fold_fn("cols", 2)(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="odd length"):
        _unfold_fn("cols", 2)(np.zeros((3, 4)))


@pytest.mark.jax
@pytest.mark.parametrize("axis,n,batch", [("cols", 7, 3), ("rows", 6, None)])
@pytest.mark.parametrize("static", [True, False])
def test_jax_matches_the_c_code(axis, n, batch, static):
    """Static lengths: the JAX mode's rewrite replaces the Ops by plain slices and sums
    (no import needed); otherwise jax_ops' JAX versions run.  Both give the C values
    (one addition per output: equal to rounding; the unfold's flip may reorder nothing)."""
    pytest.importorskip("jax")
    import bayesoof.physics.jax_ops  # noqa: F401  (registers the JAX versions)

    rng = np.random.default_rng(9)
    shape = _shape(axis, n, batch)
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    typ = shape if static else (None,) * len(shape)
    A, B = (pt.tensor(dtype="float64", shape=typ) for _ in range(2))
    fold = pytensor.function([A, B], ParityFold(axis)(A, B), mode="JAX")
    out = _fold_fn(axis, len(shape))(a, b)
    np.testing.assert_allclose(fold(a, b), out, rtol=0, atol=0)
    g = rng.normal(size=out.shape)
    G = pt.tensor(dtype="float64", shape=out.shape if static else (None,) * len(shape))
    unfold = pytensor.function([G], ParityUnfold(axis)(G), mode="JAX")
    for x, y in zip(unfold(g), _unfold_fn(axis, len(shape))(g), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-15)
    kinds = {type(nd.op) for f in (fold, unfold) for nd in f.maker.fgraph.apply_nodes}
    assert (not kinds & {ParityFold, ParityUnfold}) == static
