"""Even/odd parts of a pair of real arrays about the centre of one axis, in one pass.

:class:`~bayesoof.physics.transforms.LatticeDFT` contracts each aperture axis against
cosines (even in x) and sines (odd in x) on half the pixels, so before each of its two
products it forms, for a pair ``(a, b)`` (real and imaginary parts) and the axis being
contracted (length n, half = n // 2, ne = n - half)::

    a_e[j] = a[j] + a[n-1-j],  a_o[j] = a[j] - a[n-1-j]   (j < half; a_e[half] = a[half] if n odd)
    fold(a, b) = [[a_e, b_o],
                  [b_e, -a_o]]

with the parity axis split ``[0, ne) | [ne, n)`` and the two block rows stacked along the
*other* axis ('cols': the parity axis is the last, the blocks stack along axis -2, the
output is (…, 2r, n); 'rows': the parity axis is -2, the blocks stack along the last, the
output is (…, n, 2c)).  Written with slices, sums and joins this took ~23 % of the quick
fit's objective (five passes over the data and four temporaries per fold; PyTensor's
profile of pyoof's example, bench/RESULTS.md); :class:`ParityFold` writes the output in
one pass, and :class:`ParityUnfold`, its transpose, is its gradient (and it is
ParityUnfold's), so value, gradient and the forward-mode Jacobian all run C loops.

Inputs of 2 or 3 dimensions (a leading batch axis: the fit's directions); more batch axes
are reshaped onto one by the vectorisation rule.  Both Ops have C code (PyTensor's
default backend); :func:`fold_plain` / :func:`unfold_plain` write them with slices, sums
and concatenations for any array module: NumPy (the Ops' ``perform``), PyTensor (a graph
rewrite, tags "jax" and "numba", puts them in place of the Ops in those modes, whose
compilers fuse them, so a JAX compilation of a bayesoof graph needs no import first) and
JAX (:mod:`bayesoof.physics.jax_ops`, where a length is not static).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.replace import _vectorize_node
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.link.c.op import COp

__all__ = ["ParityFold", "ParityUnfold", "fold_plain", "unfold_plain"]

AXES = ("cols", "rows")


def _parity_axis(axis: str) -> int:
    return -1 if axis == "cols" else -2


def _block_axis(axis: str) -> int:
    return -2 if axis == "cols" else -1


# ------------------------------------------------------------------ slices, sums, joins
def _take(x, axis: int, start: int, stop: int):
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(start, stop)
    return x[tuple(idx)]


def fold_plain(a, b, axis: str, xp=np, n: int | None = None):
    """:class:`ParityFold` written with slices, sums and concatenations.

    ``xp``: the array module (``numpy``, ``jax.numpy`` or ``pytensor.tensor``); ``n``
    the parity axis' length (default: ``a``'s, which must then be concrete).
    """
    p, k = _parity_axis(axis), _block_axis(axis)
    n = a.shape[p] if n is None else n
    half = n // 2

    def halves(x):  # x[j], x[n-1-j] for j < half, and x[half] (empty if n is even)
        return (_take(x, p, 0, half), _take(xp.flip(x, axis=p), p, 0, half),
                _take(x, p, half, n - half))

    a_lo, a_hi, a_mid = halves(a)
    b_lo, b_hi, b_mid = halves(b)
    top = xp.concatenate([a_lo + a_hi, a_mid, b_lo - b_hi], axis=p)
    bottom = xp.concatenate([b_lo + b_hi, b_mid, a_hi - a_lo], axis=p)
    return xp.concatenate([top, bottom], axis=k)


def unfold_plain(g, axis: str, xp=np, n: int | None = None, blocks: int | None = None):
    """:class:`ParityUnfold` (the transpose of :func:`fold_plain`), as it is written.

    ``n``, ``blocks``: the parity axis' and the block axis' lengths (default: ``g``'s).
    """
    p, k = _parity_axis(axis), _block_axis(axis)
    n = g.shape[p] if n is None else n
    m = (g.shape[k] if blocks is None else blocks) // 2
    half = n // 2
    ne = n - half
    top, bottom = _take(g, k, 0, m), _take(g, k, m, 2 * m)

    def split(x):  # adjoints of the even part, the middle, the odd part
        return _take(x, p, 0, half), _take(x, p, half, ne), _take(x, p, ne, n)

    def assemble(even, mid, odd):  # x[j] = even + odd, x[n-1-j] = even - odd
        return xp.concatenate([even + odd, mid, xp.flip(even - odd, axis=p)], axis=p)

    t_e, t_mid, t_o = split(top)
    b_e, b_mid, b_o = split(bottom)
    return assemble(t_e, t_mid, -b_o), assemble(b_e, b_mid, t_o)


# ------------------------------------------------------------------ the Ops
_C_SHAPES = """
    const int nd = PyArray_NDIM(%(x)s);
    const npy_intp NB = nd == 3 ? PyArray_DIMS(%(x)s)[0] : 1;
    const npy_intp NR = PyArray_DIMS(%(x)s)[nd - 2], NC = PyArray_DIMS(%(x)s)[nd - 1];
"""


def _strides(var: str, prefix: str) -> str:
    """C lines: element strides (batch, row, column) of a 2- or 3-d float64 array."""
    return f"""
    const npy_intp {prefix}B = PyArray_NDIM({var}) == 3 ? PyArray_STRIDES({var})[0] / 8 : 0;
    const npy_intp {prefix}R = PyArray_STRIDES({var})[PyArray_NDIM({var}) - 2] / 8;
    const npy_intp {prefix}C = PyArray_STRIDES({var})[PyArray_NDIM({var}) - 1] / 8;
"""


def _alloc(var: str, dims: str, fail: str) -> str:
    """C lines: (re)allocate ``var`` C-contiguous with ``dims`` (an npy_intp[nd] array)."""
    return f"""
    {{
        int fresh = {var} == NULL || PyArray_NDIM({var}) != nd
                    || !PyArray_IS_C_CONTIGUOUS({var});
        for (int i = 0; !fresh && i < nd; ++i) fresh = PyArray_DIMS({var})[i] != {dims}[i];
        if (fresh) {{
            Py_XDECREF({var});
            {var} = (PyArrayObject *) PyArray_EMPTY(nd, {dims}, NPY_FLOAT64, 0);
            if (!{var}) {{ {fail} }}
        }}
    }}
"""


class _ParityOp(COp):
    __props__ = ("axis",)

    def __init__(self, axis: str):
        if axis not in AXES:
            raise ValueError(f"{type(self).__name__}: axis must be one of {AXES}, got {axis!r}")
        self.axis = axis

    def c_code_cache_version(self):
        """Version of the C code (bump on any change)."""
        return (1,)

    def c_compile_args(self, **kwargs):
        """Compile the loops with full optimisation."""
        return ["-O3"]

    @staticmethod
    def _as_input(x):
        x = pt.as_tensor_variable(x)
        if x.type.dtype != "float64" or x.type.ndim not in (2, 3):
            raise TypeError(f"parity fold: expected a float64 array of 2 or 3 dimensions, got "
                            f"{x.type}")
        return x


class ParityFold(_ParityOp):
    """``fold(a, b)`` of the module docstring; ``a`` and ``b`` of one shape (r, n) or (B, r, n)."""

    def make_node(self, a, b):
        """Check the inputs and build the Apply (output (…, 2r, n) or (…, n, 2c))."""
        a, b = self._as_input(a), self._as_input(b)
        if a.type.ndim != b.type.ndim:
            raise TypeError(f"ParityFold: inputs of {a.type.ndim} and {b.type.ndim} dimensions")
        shape = list(a.type.shape)
        k = _block_axis(self.axis)
        shape[k] = None if shape[k] is None else 2 * shape[k]
        return Apply(self, [a, b], [pt.tensor(dtype="float64", shape=tuple(shape))])

    def perform(self, node, inputs, output_storage):
        """NumPy implementation (modes without C code)."""
        a, b = inputs
        if a.shape != b.shape:
            raise ValueError(f"ParityFold: inputs of shapes {a.shape} and {b.shape}")
        output_storage[0][0] = fold_plain(a, b, self.axis)

    def infer_shape(self, fgraph, node, shapes):
        """Output shape: the block axis doubled."""
        shape = list(shapes[0])
        shape[_block_axis(self.axis)] = 2 * shape[_block_axis(self.axis)]
        return [tuple(shape)]

    def L_op(self, inputs, outputs, output_grads):
        """Gradient: :class:`ParityUnfold` (the transpose) of the output gradient."""
        return list(ParityUnfold(self.axis)(output_grads[0]))

    def c_code(self, node, name, inp, out, sub):
        """C implementation: one pass over the inputs, writing the output's four blocks."""
        a, b = inp
        (z,) = out
        fail = sub["fail"]
        cols = self.axis == "cols"
        dims = (f"npy_intp dims[3]; for (int i = 0; i < nd; ++i) dims[i] = PyArray_DIMS({a})[i];"
                f" dims[nd - {2 if cols else 1}] *= 2;")
        # P: the parity axis' length and strides; O: the other axis'; BLK: the offset of
        # the second block row in the output
        pick = ("const npy_intp N = NC, M = NR;"
                " const npy_intp aP = aC, aO = aR, bP = bC, bO = bR, zP = zC, zO = zR;"
                " const npy_intp BLK = NR * zR;") if cols else (
                "const npy_intp N = NR, M = NC;"
                " const npy_intp aP = aR, aO = aC, bP = bR, bO = bC, zP = zR, zO = zC;"
                " const npy_intp BLK = NC * zC;")
        body = """
#define FOLD_BODY \\
    const double *pa = A + ib * aB + o * aO, *pb = Bp + ib * bB + o * bO; \\
    double *pz = Z + ib * zB + o * zO; \\
    const double alo = pa[j * aP], ahi = pa[(N - 1 - j) * aP]; \\
    const double blo = pb[j * bP], bhi = pb[(N - 1 - j) * bP]; \\
    pz[j * zP] = alo + ahi; \\
    pz[(NE + j) * zP] = blo - bhi; \\
    pz[BLK + j * zP] = blo + bhi; \\
    pz[BLK + (NE + j) * zP] = ahi - alo;
    const npy_intp HALF = N / 2, NE = N - HALF;
    const double *A = (const double *) PyArray_DATA(%(a)s);
    const double *Bp = (const double *) PyArray_DATA(%(b)s);
    double *Z = (double *) PyArray_DATA(%(z)s);
    for (npy_intp ib = 0; ib < NB; ++ib) {
        if (aP == 1) {  /* the parity axis is contiguous: pairs along each line */
            for (npy_intp o = 0; o < M; ++o)
                for (npy_intp j = 0; j < HALF; ++j) { FOLD_BODY }
        } else {  /* lines of the other axis, pair by pair */
            for (npy_intp j = 0; j < HALF; ++j)
                for (npy_intp o = 0; o < M; ++o) { FOLD_BODY }
        }
        if (N %% 2) {
            for (npy_intp o = 0; o < M; ++o) {
                Z[ib * zB + o * zO + HALF * zP] = A[ib * aB + o * aO + HALF * aP];
                Z[ib * zB + o * zO + BLK + HALF * zP] = Bp[ib * bB + o * bO + HALF * bP];
            }
        }
    }
#undef FOLD_BODY
"""
        check = """
    if (PyArray_NDIM(%(a)s) != PyArray_NDIM(%(b)s)
            || !PyArray_SAMESHAPE(%(a)s, %(b)s)) {
        PyErr_SetString(PyExc_ValueError, "ParityFold: inputs of different shapes");
        %(fail)s
    }
"""
        code = ((_C_SHAPES % {"x": a}) + (check % {"a": a, "b": b, "fail": fail})
                + dims + _alloc(z, "dims", fail)
                + _strides(a, "a") + _strides(b, "b") + _strides(z, "z") + pick
                + body % {"a": a, "b": b, "z": z})
        return "{" + code + "}"


class ParityUnfold(_ParityOp):
    """The transpose of :class:`ParityFold`: ``g`` (…, 2r, n) or (…, n, 2c) -> ``(ga, gb)``."""

    def make_node(self, g):
        """Check the input and build the Apply (two outputs, the block axis halved)."""
        g = self._as_input(g)
        shape = list(g.type.shape)
        k = _block_axis(self.axis)
        shape[k] = None if shape[k] is None else shape[k] // 2
        outs = [pt.tensor(dtype="float64", shape=tuple(shape)) for _ in range(2)]
        return Apply(self, [g], outs)

    def perform(self, node, inputs, output_storage):
        """NumPy implementation (modes without C code)."""
        (g,) = inputs
        if g.shape[_block_axis(self.axis)] % 2:
            raise ValueError(f"ParityUnfold: block axis of odd length in shape {g.shape}")
        ga, gb = unfold_plain(g, self.axis)
        output_storage[0][0], output_storage[1][0] = ga, gb

    def infer_shape(self, fgraph, node, shapes):
        """Output shapes: the block axis halved."""
        shape = list(shapes[0])
        shape[_block_axis(self.axis)] = shape[_block_axis(self.axis)] // 2
        return [tuple(shape), tuple(shape)]

    def L_op(self, inputs, outputs, output_grads):
        """Gradient: :class:`ParityFold` of the outputs' gradients (zeros where absent)."""
        ga, gb = output_grads
        ga = pt.zeros_like(outputs[0]) if _disconnected(ga) else ga
        gb = pt.zeros_like(outputs[1]) if _disconnected(gb) else gb
        return [ParityFold(self.axis)(ga, gb)]

    def c_code(self, node, name, inp, out, sub):
        """C implementation: one pass over ``g``, writing both outputs."""
        (g,) = inp
        za, zb = out
        fail = sub["fail"]
        cols = self.axis == "cols"
        dims = (f"npy_intp dims[3]; for (int i = 0; i < nd; ++i) dims[i] = PyArray_DIMS({g})[i];"
                f" dims[nd - {2 if cols else 1}] /= 2;")
        check = """
    if (PyArray_DIMS(%(g)s)[nd - %(k)d] %% 2) {
        PyErr_SetString(PyExc_ValueError, "ParityUnfold: block axis of odd length");
        %(fail)s
    }
"""
        pick = ("const npy_intp N = NC, M = NR / 2;"
                " const npy_intp gP = gC, gO = gR, aP = aC, aO = aR, bP = bC, bO = bR;"
                " const npy_intp BLK = M * gR;") if cols else (
                "const npy_intp N = NR, M = NC / 2;"
                " const npy_intp gP = gR, gO = gC, aP = aR, aO = aC, bP = bR, bO = bC;"
                " const npy_intp BLK = M * gC;")
        body = """
#define UNFOLD_BODY \\
    const double *pg = G + ib * gB + o * gO; \\
    double *pa = ZA + ib * aB + o * aO, *pb = ZB + ib * bB + o * bO; \\
    const double te = pg[j * gP], to = pg[(NE + j) * gP]; \\
    const double be = pg[BLK + j * gP], bo = pg[BLK + (NE + j) * gP]; \\
    pa[j * aP] = te - bo; \\
    pa[(N - 1 - j) * aP] = te + bo; \\
    pb[j * bP] = be + to; \\
    pb[(N - 1 - j) * bP] = be - to;
    const npy_intp HALF = N / 2, NE = N - HALF;
    const double *G = (const double *) PyArray_DATA(%(g)s);
    double *ZA = (double *) PyArray_DATA(%(za)s);
    double *ZB = (double *) PyArray_DATA(%(zb)s);
    for (npy_intp ib = 0; ib < NB; ++ib) {
        if (gP == 1) {
            for (npy_intp o = 0; o < M; ++o)
                for (npy_intp j = 0; j < HALF; ++j) { UNFOLD_BODY }
        } else {
            for (npy_intp j = 0; j < HALF; ++j)
                for (npy_intp o = 0; o < M; ++o) { UNFOLD_BODY }
        }
        if (N %% 2) {
            for (npy_intp o = 0; o < M; ++o) {
                ZA[ib * aB + o * aO + HALF * aP] = G[ib * gB + o * gO + HALF * gP];
                ZB[ib * bB + o * bO + HALF * bP] = G[ib * gB + o * gO + BLK + HALF * gP];
            }
        }
    }
#undef UNFOLD_BODY
"""
        code = ((_C_SHAPES % {"x": g})
                + (check % {"g": g, "k": 2 if cols else 1, "fail": fail})
                + dims + _alloc(za, "dims", fail) + _alloc(zb, "dims", fail)
                + _strides(g, "g") + _strides(za, "a") + _strides(zb, "b") + pick
                + body % {"g": g, "za": za, "zb": zb})
        return "{" + code + "}"


def _disconnected(g) -> bool:
    from pytensor.gradient import DisconnectedType, NullType

    return isinstance(g.type, DisconnectedType | NullType)


@_vectorize_node.register(ParityFold)
@_vectorize_node.register(ParityUnfold)
def _vectorize_parity_op(op, node, *inputs):
    """Batch axes onto the Op's one leading axis (reshaped back afterwards)."""
    x0 = max(inputs, key=lambda x: x.type.ndim)
    # an input without the batch axes (its tangent did not depend on the direction) is
    # broadcast to them: a view with zero strides, which the C loops read as they are
    inputs = [x if x.type.ndim == x0.type.ndim else pt.broadcast_to(x, x0.shape)
              for x in inputs]
    if x0.type.ndim <= 3:
        return op.make_node(*inputs)
    lead = [x0.shape[i] for i in range(x0.type.ndim - 2)]
    flat = [x.reshape((-1, x.shape[-2], x.shape[-1])) for x in inputs]
    outs = op(*flat)
    outs = outs if isinstance(outs, list | tuple) else [outs]
    return [o.reshape((*lead, o.shape[-2], o.shape[-1])) for o in outs]


# ------------------------------------------------------------------ JAX / Numba
@node_rewriter([ParityFold, ParityUnfold])
def parity_ops_to_plain_graph(fgraph, node):
    """Replace the Ops by :func:`fold_plain` / :func:`unfold_plain` (static lengths only)."""
    op, x = node.op, node.inputs[0]
    n = x.type.shape[_parity_axis(op.axis)]
    if n is None:
        return None
    if isinstance(op, ParityFold):
        return [fold_plain(*node.inputs, op.axis, xp=pt, n=n)]
    blocks = x.type.shape[_block_axis(op.axis)]
    if blocks is None:
        return None
    return list(unfold_plain(x, op.axis, xp=pt, n=n, blocks=blocks))


optdb.register("bayesoof_parity_ops_to_plain_graph", dfs_rewriter(parity_ops_to_plain_graph),
               "jax", "numba", position=100)
