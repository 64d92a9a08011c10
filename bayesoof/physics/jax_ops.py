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
become the slices, sums and concatenations of ``fold_plain`` / ``unfold_plain`` (JAX
mode's rewrite does the same where the lengths are static; these serve otherwise).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from pytensor.graph.basic import Constant
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.tensor.fft import IRFFTOp, RFFTOp

from bayesoof.physics.gridding import KernelGather, KernelSpread
from bayesoof.physics.parity_fold import ParityFold, ParityUnfold, fold_plain, unfold_plain

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


@jax_funcify.register(ParityFold)
def _jax_parity_fold(op, node=None, **kwargs):
    def fold(a, b):
        return fold_plain(a, b, op.axis, xp=jnp)

    return fold


@jax_funcify.register(ParityUnfold)
def _jax_parity_unfold(op, node=None, **kwargs):
    def unfold(g):
        return unfold_plain(g, op.axis, xp=jnp)

    return unfold
