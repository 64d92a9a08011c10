"""JAX implementations of Ops that lack one: pytensor's RFFT and IRFFT, bayesoof's kernel Ops.

Importing this module registers them with pytensor's JAX linker (the samplers import it
whenever they use JAX), so every transform's graph compiles with ``mode="JAX"``.

pytensor's ``RFFTOp`` transforms all axes after the first (batch) axis of a real array
and returns real and imaginary parts stacked on a new last axis; ``IRFFTOp`` is its
unnormalised inverse (it appears in the gradient).  The transform sizes must be static
under JAX: they are read from the node when constant, else from the input's shape
(the size of the last axis of an IRFFT is then taken to be even, which is what
:mod:`bayesoof.physics.transforms` always builds).

:class:`~bayesoof.physics.gridding.KernelGather` becomes a gather of each sample's w × w
block and :class:`~bayesoof.physics.gridding.KernelSpread` its scatter-add (``.at[].add``).
:class:`~bayesoof.physics.parity_fold.ParityFold` and its transpose ``ParityUnfold``
become slices, sums and concatenations (XLA fuses them).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from pytensor.graph.basic import Constant
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.tensor.fft import IRFFTOp, RFFTOp

from bayesoof.physics.gridding import KernelGather, KernelSpread
from bayesoof.physics.parity_fold import ParityFold, ParityUnfold

__all__: list[str] = []


def _static_sizes(node) -> tuple[int, ...] | None:
    s = node.inputs[1]
    if isinstance(s, Constant):
        return tuple(int(v) for v in np.asarray(s.data))
    return None


@jax_funcify.register(RFFTOp)
def _jax_rfft(op, node=None, **kwargs):
    sizes = _static_sizes(node) if node is not None else None

    def rfft(a, s=None):
        shape = sizes or a.shape[1:]
        spec = jnp.fft.rfftn(a, s=shape, axes=tuple(range(1, a.ndim)))
        return jnp.stack([spec.real, spec.imag], axis=-1).astype(a.dtype)

    return rfft


@jax_funcify.register(IRFFTOp)
def _jax_irfft(op, node=None, **kwargs):
    sizes = _static_sizes(node) if node is not None else None

    def irfft(a, s=None):
        shape = sizes or (*a.shape[1:-2], 2 * (a.shape[-2] - 1))
        spec = a[..., 0] + 1j * a[..., 1]
        out = jnp.fft.irfftn(spec, s=shape, axes=tuple(range(1, a.ndim - 1)))
        return (out * np.prod(shape)).astype(a.dtype)

    return irfft


def _blocks(ku, kv, width):
    taps = jnp.arange(width)
    return (ku[:, None] + taps)[:, :, None], (kv[:, None] + taps)[:, None, :]


@jax_funcify.register(KernelGather)
def _jax_kernel_gather(op, node=None, **kwargs):
    def gather(lattice, ku, kv, wu, wv):
        rows, cols = _blocks(ku, kv, op.width)
        block = lattice[:, rows, cols]  # (2, M, w, w)
        return jnp.einsum("cmab,ma,mb->cm", block, wu, wv)

    return gather


@jax_funcify.register(KernelSpread)
def _jax_kernel_spread(op, node=None, **kwargs):
    def spread(samples, ku, kv, wu, wv):
        rows, cols = _blocks(ku, kv, op.width)
        contrib = samples[:, :, None, None] * (wu[:, :, None] * wv[:, None, :])
        out = jnp.zeros((samples.shape[0], op.nu, op.nv), dtype=samples.dtype)
        return out.at[:, rows, cols].add(contrib)

    return spread


def _parity_halves(x, axis: int):
    """(lo, hi, middle) along ``axis``: x[j], x[n-1-j] for j < n // 2, and x[n // 2] if n is odd."""
    n = x.shape[axis]
    half = n // 2
    lo = jnp.take(x, jnp.arange(half), axis=axis)
    hi = jnp.take(x, n - 1 - jnp.arange(half), axis=axis)
    mid = jnp.take(x, jnp.arange(half, half + n % 2), axis=axis)
    return lo, hi, mid


@jax_funcify.register(ParityFold)
def _jax_parity_fold(op, node=None, **kwargs):
    p, k = (-1, -2) if op.axis == "cols" else (-2, -1)

    def fold(a, b):
        a_lo, a_hi, a_mid = _parity_halves(a, p)
        b_lo, b_hi, b_mid = _parity_halves(b, p)
        top = jnp.concatenate([a_lo + a_hi, a_mid, b_lo - b_hi], axis=p)
        bottom = jnp.concatenate([b_lo + b_hi, b_mid, a_hi - a_lo], axis=p)
        return jnp.concatenate([top, bottom], axis=k)

    return fold


@jax_funcify.register(ParityUnfold)
def _jax_parity_unfold(op, node=None, **kwargs):
    p, k = (-1, -2) if op.axis == "cols" else (-2, -1)

    def unfold(g):
        m = g.shape[k] // 2
        n = g.shape[p]
        half = n // 2
        ne = n - half
        top = jnp.take(g, jnp.arange(m), axis=k)
        bottom = jnp.take(g, m + jnp.arange(m), axis=k)

        def split(x):
            return (jnp.take(x, jnp.arange(half), axis=p),
                    jnp.take(x, jnp.arange(half, ne), axis=p),
                    jnp.take(x, jnp.arange(ne, n), axis=p))

        t_e, t_mid, t_o = split(top)
        b_e, b_mid, b_o = split(bottom)

        def assemble(even, mid, odd):
            return jnp.concatenate([even + odd, mid, jnp.flip(even - odd, axis=p)], axis=p)

        return assemble(t_e, t_mid, -b_o), assemble(b_e, b_mid, t_o)

    return unfold
