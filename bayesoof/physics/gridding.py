"""Compact-kernel interpolation between a fine lattice and scattered samples.

The non-uniform transform of :class:`bayesoof.physics.transforms.NUFFT` reads the far field
at scattered samples from its exact values on a lattice of step ``h`` (rad) by

    F(u, v) = Σ_ab φ(u/h - k_a) φ(v/h - k_b) G[k_a, k_b]

with φ the "exponential of semicircle" kernel of width ``w`` lattice steps,
φ(t) = exp(β (sqrt(1 - (2t/w)²) - 1)) for |t| < w/2 (Barnett, Magland & af Klinteberg 2019,
the kernel of finufft).  Its Fourier transform φ̂ divides the aperture field beforehand
(:func:`es_kernel_ft`), which makes the interpolation exact up to the kernel's aliasing
error, ~10^-(w-1) of Σ|E| at oversampling 2.

Two strict Ops do the interpolation, each the transpose of the other, so that the gradient
of one is the other (no dense samples × lattice matrix is formed):

* :class:`KernelGather` — lattice values (C, Nu, Nv) -> sample values (C, M);
* :class:`KernelSpread` — sample values (C, M) -> lattice values (C, Nu, Nv), a scatter-add.

Each sample ``i`` reads the w × w lattice block starting at ``(ku[i], kv[i])`` with the
separable weights ``wu[i, a] wv[i, b]``.  The C planes (C even) are interpolated
independently, in pairs (real and imaginary parts); batched inputs (``vectorize_graph``,
used by the fit's forward-mode Jacobian) fold their batch axes into C, so one call serves
every direction.  Both Ops have C code (PyTensor's default
backend), a NumPy ``perform`` and JAX implementations (:mod:`bayesoof.physics.jax_ops`).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.replace import _vectorize_node
from pytensor.link.c.op import COp
from pytensor.tensor.blockwise import vectorize_node_fallback

__all__ = [
    "KernelGather",
    "KernelSpread",
    "es_kernel",
    "es_kernel_ft",
    "kernel_beta",
    "kernel_taps",
]


# ------------------------------------------------------------------ the kernel
def kernel_beta(width: int, oversample: float) -> float:
    """Shape parameter β of the ES kernel: 0.97 π w (1 - 1/(2σ)) (finufft's choice)."""
    return 0.97 * np.pi * width * (1.0 - 0.5 / oversample)


def es_kernel(t: np.ndarray, width: int, beta: float) -> np.ndarray:
    """ES kernel φ(t) at offsets ``t`` in lattice steps (0 outside |t| < w/2)."""
    z = 1.0 - (2.0 * np.asarray(t, float) / width) ** 2
    return np.where(z > 0, np.exp(beta * (np.sqrt(np.clip(z, 0.0, None)) - 1.0)), 0.0)


def es_kernel_ft(xi: np.ndarray, width: int, beta: float, nodes: int = 200) -> np.ndarray:
    """Fourier transform φ̂(ξ) = ∫ φ(t) exp(-2πi t ξ) dt (real, φ even), ξ in cycles per step.

    Gauss–Legendre quadrature over the support; 200 nodes integrate the smooth kernel
    to machine precision for w <= 16 and |ξ| <= 1.
    """
    t, wt = np.polynomial.legendre.leggauss(nodes)
    t, wt = 0.5 * width * t, 0.5 * width * wt
    xi = np.asarray(xi, float)
    phase = 2.0 * np.pi * np.multiply.outer(xi, t)  # (..., nodes)
    return np.cos(phase) @ (wt * es_kernel(t, width, beta))


def kernel_taps(
    position: np.ndarray, width: int, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """First lattice index and the ``width`` weights of each sample.

    Parameters
    ----------
    position : ndarray (M,)
        Sample positions in lattice steps (lattice point k sits at k).

    Returns
    -------
    first : ndarray (M,) int64
        Index of the first lattice point read, ceil(position - w/2).
    weights : ndarray (M, w)
        φ(position - first - j), j = 0..w-1.
    """
    first = np.ceil(position - 0.5 * width).astype(np.int64)
    offsets = position[:, None] - (first[:, None] + np.arange(width))
    return first, es_kernel(offsets, width, beta)


# ------------------------------------------------------------------ the Ops
def _check_inputs(op, values, ku, kv, wu, wv, values_ndim):
    """Tensor inputs of a gather/spread with their dtypes, ranks and static shapes checked."""
    name = type(op).__name__
    values = pt.as_tensor_variable(values)
    ku, kv = pt.as_tensor_variable(ku), pt.as_tensor_variable(kv)
    wu, wv = pt.as_tensor_variable(wu), pt.as_tensor_variable(wv)
    first = values.type.shape[0] if values.ndim else None
    if values.ndim != values_ndim or values.dtype != "float64" or (first or 0) % 2:
        raise TypeError(
            f"{name}: values must be float64 of {values_ndim} dimensions, the first of even"
            f" length (planes in pairs, e.g. real and imaginary parts), got {values.type}"
        )
    for label, k in (("ku", ku), ("kv", kv)):
        if k.ndim != 1 or k.dtype != "int64":
            raise TypeError(f"{name}: {label} must be an int64 vector, got {k.type}")
    for label, w in (("wu", wu), ("wv", wv)):
        if w.ndim != 2 or w.dtype != "float64" or w.type.shape[1] not in (None, op.width):
            raise TypeError(
                f"{name}: {label} must be a float64 matrix of {op.width} columns, got {w.type}"
            )
    return values, ku, kv, wu, wv


def _blocks(ku, kv, width):
    """Row and column indices (M, w, 1), (M, 1, w) of each sample's w × w block."""
    taps = np.arange(width)
    return (ku[:, None] + taps)[:, :, None], (kv[:, None] + taps)[:, None, :]


def _check_bounds(op_name, ku, kv, width, nu, nv):
    if ku.size and (ku.min() < 0 or ku.max() > nu - width or kv.min() < 0
                    or kv.max() > nv - width):
        raise IndexError(
            f"{op_name}: a sample's {width} x {width} block leaves the {nu} x {nv} lattice"
        )


# C code shared by both Ops: contiguous views of the inputs, shape and bound checks.  The
# kernel width W is a compile-time constant (the loops unroll and vectorise); the lattice is
# interleaved (re, im) in a scratch buffer so that each of a sample's W rows is one run of
# 2W contiguous doubles.
_C_PROLOGUE = """
#define W %(w)d
    PyArrayObject *a_in = PyArray_GETCONTIGUOUS(%(values)s);
    PyArrayObject *a_ku = PyArray_GETCONTIGUOUS(%(ku)s);
    PyArrayObject *a_kv = PyArray_GETCONTIGUOUS(%(kv)s);
    PyArrayObject *a_wu = PyArray_GETCONTIGUOUS(%(wu)s);
    PyArrayObject *a_wv = PyArray_GETCONTIGUOUS(%(wv)s);
    double *lat = NULL;
    int err = (!a_in || !a_ku || !a_kv || !a_wu || !a_wv);
    npy_intp M = 0, NC = 0;
    const npy_intp NU = %(nu)d, NV = %(nv)d;
    if (!err) {
        M = PyArray_DIMS(a_ku)[0];
        NC = PyArray_DIMS(a_in)[0];
        if (PyArray_DIMS(a_kv)[0] != M || PyArray_DIMS(a_wu)[0] != M
                || PyArray_DIMS(a_wv)[0] != M || PyArray_DIMS(a_wu)[1] != W
                || PyArray_DIMS(a_wv)[1] != W || NC %% 2 != 0 || %(shape_bad)s) {
            PyErr_SetString(PyExc_ValueError, "%(op)s: inconsistent input shapes");
            err = 1;
        }
    }
    const npy_int64 *KU = NULL, *KV = NULL;
    const double *WU = NULL, *WV = NULL;
    if (!err) {
        KU = (const npy_int64 *) PyArray_DATA(a_ku);
        KV = (const npy_int64 *) PyArray_DATA(a_kv);
        WU = (const double *) PyArray_DATA(a_wu);
        WV = (const double *) PyArray_DATA(a_wv);
        for (npy_intp i = 0; i < M; ++i) {
            if (KU[i] < 0 || KU[i] > NU - W || KV[i] < 0 || KV[i] > NV - W) {
                PyErr_SetString(PyExc_IndexError,
                                "%(op)s: a sample's block leaves the lattice");
                err = 1;
                break;
            }
        }
    }
    if (!err) {
        lat = (double *) calloc(2 * NU * NV, sizeof(double));
        if (!lat) { PyErr_NoMemory(); err = 1; }
    }
"""

_C_EPILOGUE = """
    free(lat);
    Py_XDECREF(a_in); Py_XDECREF(a_ku); Py_XDECREF(a_kv); Py_XDECREF(a_wu); Py_XDECREF(a_wv);
#undef W
    if (err) { %(fail)s }
"""

class _KernelOp(COp):
    """Common parts of the gather/spread pair: ``nu × nv`` lattice, ``width`` taps per axis."""

    __props__ = ("nu", "nv", "width")

    def __init__(self, nu: int, nv: int, width: int):
        self.nu, self.nv, self.width = int(nu), int(nv), int(width)
        if self.nu < 1 or self.nv < 1 or not 1 <= self.width <= min(16, self.nu, self.nv):
            raise ValueError(
                f"{type(self).__name__}: needs a positive lattice shape and 1 <= width <= 16"
                f" fitting in it, got {self.nu} x {self.nv}, width {self.width}"
            )

    def connection_pattern(self, node):
        """Only the values input is differentiable; indices and weights are data."""
        return [[True], [False], [False], [True], [True]]

    def c_code_cache_version(self):
        """Version of the C code (bump on any change)."""
        return (3,)

    def c_compile_args(self, **kwargs):
        """Compile the loops with full optimisation."""
        return ["-O3"]

    def L_op(self, inputs, outputs, output_grads):
        """Gradient: the transpose Op (gather <-> spread) applied to the output gradient."""
        values, ku, kv, wu, wv = inputs
        transpose = KernelSpread if isinstance(self, KernelGather) else KernelGather
        back = transpose(self.nu, self.nv, self.width)(output_grads[0], ku, kv, wu, wv)
        return [back, *self._grad_rest(inputs)]

    def _c_fields(self, inp, out, sub, shape_bad: str) -> dict:
        """The %-substitutions of the C template (variable names, sizes, shape check)."""
        values, ku, kv, wu, wv = inp
        (z,) = out
        return dict(values=values, ku=ku, kv=kv, wu=wu, wv=wv, z=z, nu=self.nu, nv=self.nv,
                    fail=sub["fail"], op=type(self).__name__, w=self.width,
                    shape_bad=shape_bad)

    def _grad_rest(self, inputs):
        values, ku, kv, wu, wv = inputs
        return [
            DisconnectedType()(),
            DisconnectedType()(),
            grad_not_implemented(self, 3, wu, "kernel weights are data"),
            grad_not_implemented(self, 4, wv, "kernel weights are data"),
        ]


class KernelGather(_KernelOp):
    """Sample values (C, M) from lattice values (C, Nu, Nv): Σ_ab wu[i,a] wv[i,b] G[c, ku+a, kv+b].

    Inputs ``(lattice, ku, kv, wu, wv)``: float64 (C, nu, nv), int64 (M,), int64 (M,),
    float64 (M, w), float64 (M, w).  The gradient with respect to the lattice is
    :class:`KernelSpread` (the transpose); the indices and weights are data.
    """

    def make_node(self, lattice, ku, kv, wu, wv):
        """Check the inputs (dtypes, ranks, static shapes) and build the Apply."""
        lattice, ku, kv, wu, wv = _check_inputs(self, lattice, ku, kv, wu, wv, 3)
        shape = lattice.type.shape
        if (shape[1] not in (None, self.nu)) or (shape[2] not in (None, self.nv)):
            raise ValueError(
                f"KernelGather: lattice of static shape {shape}, op for {self.nu} x {self.nv}"
            )
        out = pt.tensor(dtype="float64", shape=(shape[0], ku.type.shape[0]))
        return Apply(self, [lattice, ku, kv, wu, wv], [out])

    def perform(self, node, inputs, output_storage):
        """NumPy implementation (modes without C code)."""
        lattice, ku, kv, wu, wv = inputs
        if lattice.shape[1:] != (self.nu, self.nv):
            raise ValueError(
                f"KernelGather: lattice of shape {lattice.shape}, op for {self.nu} x {self.nv}"
            )
        _check_bounds("KernelGather", ku, kv, wu.shape[1], self.nu, self.nv)
        rows, cols = _blocks(ku, kv, wu.shape[1])
        block = lattice[:, rows, cols]  # (C, M, w, w)
        output_storage[0][0] = np.einsum("cmab,ma,mb->cm", block, wu, wv)

    def infer_shape(self, fgraph, node, shapes):
        """Output shape from the input shapes."""
        return [(shapes[0][0], shapes[1][0])]

    def c_code(self, node, name, inp, out, sub):
        """C implementation (see the module docstring)."""
        d = self._c_fields(inp, out, sub,
                           "PyArray_DIMS(a_in)[1] != NU || PyArray_DIMS(a_in)[2] != NV")
        body = """
    if (!err) {
        npy_intp dims[2] = {NC, M};
        if (%(z)s == NULL || PyArray_NDIM(%(z)s) != 2 || PyArray_DIMS(%(z)s)[0] != NC
                || PyArray_DIMS(%(z)s)[1] != M || !PyArray_IS_C_CONTIGUOUS(%(z)s)) {
            Py_XDECREF(%(z)s);
            %(z)s = (PyArrayObject *) PyArray_EMPTY(2, dims, NPY_FLOAT64, 0);
            if (!%(z)s) err = 1;
        }
    }
    for (npy_intp pair = 0; !err && pair < NC / 2; ++pair) {
        const double *G = (const double *) PyArray_DATA(a_in) + 2 * pair * NU * NV;
        double *Z = (double *) PyArray_DATA(%(z)s) + 2 * pair * M;
        for (npy_intp p = 0; p < NU * NV; ++p) {
            lat[2 * p] = G[p];
            lat[2 * p + 1] = G[NU * NV + p];
        }
        for (npy_intp i = 0; i < M; ++i) {
            const double *pu = WU + i * W, *pv = WV + i * W;
            const double *base = lat + 2 * (KU[i] * NV + KV[i]);
            double acc[2 * W] = {0};
            for (int a = 0; a < W; ++a) {
                const double wa = pu[a];
                const double *row = base + 2 * a * NV;
                for (int j = 0; j < 2 * W; ++j) acc[j] += wa * row[j];
            }
            double re = 0.0, im = 0.0;
            for (int b = 0; b < W; ++b) {
                re += pv[b] * acc[2 * b];
                im += pv[b] * acc[2 * b + 1];
            }
            Z[i] = re;
            Z[M + i] = im;
        }
    }
"""
        return "{" + (_C_PROLOGUE + body + _C_EPILOGUE) % d + "}"


class KernelSpread(_KernelOp):
    """Lattice values (C, Nu, Nv) from sample values (C, M): the transpose of KernelGather.

    Inputs ``(samples, ku, kv, wu, wv)`` as for :class:`KernelGather` with float64
    (C, M) sample values.  Its gradient is :class:`KernelGather`.
    """

    def make_node(self, samples, ku, kv, wu, wv):
        """Check the inputs (dtypes, ranks, static shapes) and build the Apply."""
        samples, ku, kv, wu, wv = _check_inputs(self, samples, ku, kv, wu, wv, 2)
        out = pt.tensor(dtype="float64", shape=(samples.type.shape[0], self.nu, self.nv))
        return Apply(self, [samples, ku, kv, wu, wv], [out])

    def perform(self, node, inputs, output_storage):
        """NumPy implementation (modes without C code)."""
        samples, ku, kv, wu, wv = inputs
        _check_bounds("KernelSpread", ku, kv, wu.shape[1], self.nu, self.nv)
        rows, cols = _blocks(ku, kv, wu.shape[1])
        flat = (rows * self.nv + cols).ravel()
        weights = wu[:, :, None] * wv[:, None, :]  # (M, w, w)
        out = np.empty((samples.shape[0], self.nu, self.nv))
        for c, s in enumerate(samples):
            contrib = (s[:, None, None] * weights).ravel()
            out[c] = np.bincount(flat, contrib, minlength=self.nu * self.nv).reshape(
                self.nu, self.nv
            )
        output_storage[0][0] = out

    def infer_shape(self, fgraph, node, shapes):
        """Output shape from the input shapes."""
        return [(shapes[0][0], self.nu, self.nv)]

    def c_code(self, node, name, inp, out, sub):
        """C implementation (see the module docstring)."""
        d = self._c_fields(inp, out, sub, "PyArray_DIMS(a_in)[1] != M")
        body = """
    if (!err) {
        npy_intp dims[3] = {NC, NU, NV};
        if (%(z)s == NULL || PyArray_NDIM(%(z)s) != 3 || PyArray_DIMS(%(z)s)[0] != NC
                || !PyArray_IS_C_CONTIGUOUS(%(z)s)) {
            Py_XDECREF(%(z)s);
            %(z)s = (PyArrayObject *) PyArray_EMPTY(3, dims, NPY_FLOAT64, 0);
            if (!%(z)s) err = 1;
        }
    }
    for (npy_intp pair = 0; !err && pair < NC / 2; ++pair) {
        const double *S = (const double *) PyArray_DATA(a_in) + 2 * pair * M;
        double *Z = (double *) PyArray_DATA(%(z)s) + 2 * pair * NU * NV;
        memset(lat, 0, sizeof(double) * 2 * NU * NV);
        for (npy_intp i = 0; i < M; ++i) {
            const double *pu = WU + i * W, *pv = WV + i * W;
            double *base = lat + 2 * (KU[i] * NV + KV[i]);
            const double re = S[i], im = S[M + i];
            double t[2 * W];
            for (int b = 0; b < W; ++b) {
                t[2 * b] = re * pv[b];
                t[2 * b + 1] = im * pv[b];
            }
            for (int a = 0; a < W; ++a) {
                const double wa = pu[a];
                double *row = base + 2 * a * NV;
                for (int j = 0; j < 2 * W; ++j) row[j] += wa * t[j];
            }
        }
        for (npy_intp p = 0; p < NU * NV; ++p) {
            Z[p] = lat[2 * p];
            Z[NU * NV + p] = lat[2 * p + 1];
        }
    }
"""
        return "{" + (_C_PROLOGUE + body + _C_EPILOGUE) % d + "}"


@_vectorize_node.register(KernelGather)
@_vectorize_node.register(KernelSpread)
def _vectorize_kernel_op(op, node, values, ku, kv, wu, wv):
    """Batch axes of the values folded into the plane axis: one call for the whole batch."""
    data = (ku, kv, wu, wv)
    if any(new.type.ndim != old.type.ndim for new, old in zip(data, node.inputs[1:], strict=True)):
        return vectorize_node_fallback(op, node, values, ku, kv, wu, wv)
    core = node.inputs[0].type.ndim
    n_batch = values.type.ndim - core
    if n_batch == 0:
        return op.make_node(values, ku, kv, wu, wv)
    batch = [values.shape[i] for i in range(n_batch)]
    planes = values.reshape((-1, *[values.shape[i] for i in range(n_batch + 1, values.ndim)]))
    out = op(planes, ku, kv, wu, wv)
    rest = [out.shape[i] for i in range(1, out.ndim)]
    return [out.reshape((*batch, values.shape[n_batch], *rest))]
