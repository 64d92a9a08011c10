"""The parameter space: THE layout handed from the quick fit to the model and the samplers.

A :class:`ParameterSpace` is an ordered list of :class:`Block` s plus four arrays over the
*full vector* (the blocks' entries concatenated in order): ``values`` (start, then the
fitted values), ``lower``, ``upper`` (bounds) and ``free`` (mask).  ``theta`` is the
vector of the free entries only.  Plain floats in the block's ``unit`` throughout.

The standard blocks (:meth:`ParameterSpace.standard`)::

    name      shape         unit   dims          predict argument
    K         (J,)          wave   zernike       K            (coords n, l)
    c_dB, q,  ()            dB, -, -             illum[name]  (those of the illumination
    x0, y0                  m, m                               model, in its order)
    amp       (n_maps,)     data   map           amp          (coord d_z; linear)
    offset    (n_maps,)     data   map           offset       (coord d_z; linear)
    pointing  (n_maps, 2)   rad    map, uv       pointing     (only when configured)

One mapping, used everywhere: :meth:`ParameterSpace.unpack` turns a tensor ``theta`` into
the keyword arguments of :func:`bayesoof.inference.likelihood.predict` (fixed entries
become constants); the quick fit's :class:`~bayesoof.inference.fit.Objective` calls the same
code through :meth:`ParameterSpace.unpack_from`; the PyMC builder
(:func:`bayesoof.inference.model.build_model`) makes one random variable per block with a
free entry (dims and coords from the block, prior from the block's ``prior`` key), and
:meth:`ParameterSpace.predict_kwargs` assembles its arguments the same way.

Adding a parameter (e.g. a nuisance of real observations) is ONE block::

    space.add_block(Block("focus_scale", (n_maps,), "", dims=("map",),
                          labels=tuple(f"focus_scale[{i}]" for i in range(n_maps)),
                          arg="d_z_scale", prior="focus_scale"),
                    value=1.0, lower=0.9, upper=1.1, free=True)

* ``arg`` is the keyword of ``predict`` that receives the block's value (shape
  ``shape``); with ``key`` set, ``predict`` receives a dict under ``arg`` and the block is
  its entry ``key`` (as the illumination coefficients are ``illum[c_dB]``).  ``arg=None``:
  the block is not an input of ``predict`` (e.g. a likelihood's ν or a discrepancy scale:
  read it with :meth:`ParameterSpace.block_values`).
* ``linear=True`` only for entries that enter after the far field (amp, offset): the
  quick fit's Jacobian along them costs no transform.
* ``prior`` names the table of the priors preset (``bayesoof/presets/priors``) that gives
  its distribution in the model; ``per`` in that table names the scale its numbers are
  in (``data``: the data peak, ``beam``: λ/(2R), ``radius``: R; default: the unit).

Nothing else needs to change: the fit fits it, the model samples it, the summary and the
InferenceData list it with its unit.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytensor.tensor as pt

from bayesoof.inference.config import (
    FitConfigError,
    available_presets,
    load_fit_config,
    parse_label,
)
from bayesoof.physics import zernike
from bayesoof.physics.illumination import get_illumination

__all__ = [
    "Block",
    "FitConfigError",
    "ParameterSpace",
    "available_presets",
    "load_fit_config",
    "map_labels",
]

TILTS = (1, 2)  # OSA indices of K(1,-1) and K(1,1)


def pointing_reference(d_z, n_maps: int) -> int:
    """Map whose pointing the tilts carry when both are free: the in-focus one (min |d_z|)."""
    if d_z is None or len(d_z) != n_maps or not np.all(np.isfinite(d_z)):
        return 0
    return int(np.argmin(np.abs(np.asarray(d_z, float))))


@dataclass(frozen=True)
class Block:
    """One named group of parameters: layout, labels, unit, where it goes, its prior.

    Attributes
    ----------
    name : str
        Variable name (in the PyMC model, InferenceData and summary).
    shape : tuple of int
        Shape of the block's value (``()`` for a scalar).
    unit : str
        Unit of every entry ('wave', 'dB', '', 'm', 'data', 'rad', ...).
    labels : tuple of str
        One label per entry, in C order (``K(2,0)``, ``amp[1]``, ``pointing_u[0]``, ...).
    dims : tuple of str
        Named dimensions of the block (``("zernike",)``, ``("map",)``, ``("map", "uv")``).
    coords : dict
        Auxiliary coordinates along ``dims[0]``: ``{"n": (...), "l": (...)}`` for K.
    arg : str or None
        Keyword of :func:`~bayesoof.inference.likelihood.predict` receiving the block.
    key : str or None
        Entry of the dict passed as ``arg`` (illumination coefficients), else None.
    linear : bool
        Enters the model after the far field (amplitudes and offsets).
    held : bool
        Fixed while the fit solves and differentiated only on request (the aperture model
        error): the compiled objective keeps it in an input part of its own, so Jacobians
        without its columns compute none of its tangents.
    prior : str
        Dotted path of the table of the priors preset that overrides ``default_prior``.
    default_prior : dict
        The block's prior: ``dist`` and its parameters (see
        :mod:`bayesoof.inference.priors`), in units of ``per`` (default the block's unit).
    """

    name: str
    shape: tuple[int, ...]
    unit: str
    labels: tuple[str, ...]
    dims: tuple[str, ...] = ()
    coords: dict[str, Any] = field(default_factory=dict)
    arg: str | None = None
    key: str | None = None
    linear: bool = False
    held: bool = False
    prior: str = ""
    default_prior: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of entries."""
        return int(math.prod(self.shape))


class ParameterSpace:
    """Blocks of parameters and the full-vector values, bounds and free mask.

    Parameters
    ----------
    blocks : sequence of Block
    illumination : str
        Name of the illumination model whose coefficients are blocks.
    values, lower, upper, free : arrays over the full vector, optional
        Defaults: 0, -inf, +inf, all fixed.
    """

    def __init__(self, blocks, illumination: str, values=None, lower=None, upper=None,
                 free=None):
        self.blocks: list[Block] = list(blocks)
        self.illumination = illumination
        n = sum(b.size for b in self.blocks)
        self.values = np.zeros(n) if values is None else np.asarray(values, float).copy()
        self.lower = np.full(n, -np.inf) if lower is None else np.asarray(lower, float).copy()
        self.upper = np.full(n, np.inf) if upper is None else np.asarray(upper, float).copy()
        self.free = np.zeros(n, bool) if free is None else np.asarray(free, bool).copy()
        self._index()

    def _index(self) -> None:
        names = [b.name for b in self.blocks]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter blocks must have distinct names, got {names}")
        self._slices: dict[str, slice] = {}
        i = 0
        for b in self.blocks:
            self._slices[b.name] = slice(i, i + b.size)
            i += b.size

    # ---------------------------------------------------------------- construction
    @classmethod
    def standard(cls, order: int, illumination: str, n_maps: int, with_pointing: bool = False,
                 d_z=None, map_names=None) -> ParameterSpace:
        """Blocks K, the illumination coefficients, amp, offset (and pointing); all fixed at 0.

        ``d_z`` (m, one per map) and ``map_names`` label the per-map blocks (coords ``d_z``
        and ``map``).
        """
        nl = zernike.nl_list(order)
        d_z = tuple(float(v) for v in (d_z if d_z is not None else [np.nan] * n_maps))
        names = tuple(map_names) if map_names is not None else tuple(
            f"map{i}" for i in range(n_maps))
        per_map = {"map": names, "d_z": d_z}
        labels = tuple(zernike.coeff_names(order))
        blocks = [Block("K", (len(nl),), "wave", labels, ("zernike",),
                        {"zernike": labels, "n": tuple(n for n, _ in nl),
                         "l": tuple(l for _, l in nl)},
                        arg="K", prior="zernike", default_prior={"dist": "zernike"})]
        ill = get_illumination(illumination)
        blocks += [Block(n, (), ill.units[n], (n,), arg="illum", key=n,
                         prior=f"illumination.{n}", default_prior=ill.priors.get(n, {}))
                   for n in ill.params]
        for name, prior, dist in (("amp", "amplitude", "halfnormal"),
                                  ("offset", "offset", "normal")):
            blocks.append(Block(name, (n_maps,), "data",
                                tuple(f"{name}[{i}]" for i in range(n_maps)), ("map",),
                                per_map, arg=name, linear=True, prior=prior,
                                default_prior={"dist": dist, "per": "data"}))
        if with_pointing:
            blocks.append(Block("pointing", (n_maps, 2), "rad",
                                tuple(f"pointing_{a}[{i}]" for i in range(n_maps)
                                      for a in ("u", "v")),
                                ("map", "uv"), per_map | {"uv": ("u", "v")}, arg="pointing",
                                prior="pointing",
                                default_prior={"dist": "normal", "per": "beam"}))
        return cls(blocks, illumination)

    @classmethod
    def from_config(cls, cfg: dict, n_maps: int, beam_width: float, d_z=None,
                    map_names=None, *, radius: float) -> ParameterSpace:
        """Space for ``cfg`` (see :func:`load_fit_config`) at order ``cfg['fit']['order']``.

        ``beam_width`` (rad, λ/D) scales the pointing bounds, the dish ``radius`` (m) the
        illumination-centre offsets (configured in units of R).  All orders' K are free
        unless listed in ``zernike.fixed``; :meth:`at_order` restricts them.
        """
        source = cfg.get("source", "config")
        f = cfg["fit"]
        sp = cls.standard(f["order"], f["illumination"], n_maps, cfg["pointing"]["free"], d_z,
                          map_names)
        z = cfg["zernike"]
        k = sp.slice_of("K")
        sp.values[k] = z["init"]
        sp.lower[k], sp.upper[k] = z["lower"], z["upper"]
        sp.free[k] = True
        if "K(0,0)" not in {lab.replace(" ", "") for lab in z["fixed"]}:
            raise FitConfigError(
                f"{source}: 'zernike.fixed' must hold K(0,0): piston does not change the beam "
                "and cannot be fitted"
            )
        for label, val in z["fixed"].items():
            n, l = parse_label(label, source)  # noqa: E741
            if n > sp.order:
                continue
            j = zernike.nl_to_j(n, l)
            sp.free[j], sp.values[j] = False, float(val)
        sp.set_illumination(cfg["illumination"], radius)
        sp.set("amp", 1.0, lower=0.0, free=cfg["amplitude"]["free"])
        sp.set("offset", 0.0, free=cfg["offset"]["free"])
        if f["residual"] == "pyoof":  # min-max normalisation removes scale and offset
            sp.set("amp", 1.0, free=False)
            sp.set("offset", 0.0, free=False)
        if sp.with_pointing:
            lim = cfg["pointing"]["limit"] * beam_width
            sp.set("pointing", 0.0, lower=-lim, upper=lim, free=True)
            if any(sp.free[j] for j in TILTS):
                # tilts and a pointing offset common to all maps are exactly degenerate (a
                # tilt is a linear aperture phase: it shifts every beam alike); the tilts
                # carry the reference map's pointing, the other maps' offsets are relative
                sp.free[sp.pointing_slice.start + 2 * pointing_reference(d_z, n_maps)
                        + np.arange(2)] = False
        if not sp.free.any():
            raise FitConfigError(f"{source}: every parameter is fixed; nothing to fit")
        return sp

    def set_illumination(self, tables: dict, radius: float, free: bool = True) -> None:
        """Set the illumination coefficients from the ``[illumination.<name>]`` tables.

        Start, bounds and (unless ``free=False``) free flags.  The configured numbers are
        in each coefficient's ``per`` unit (:class:`bayesoof.physics.illumination.Coefficient`):
        x0, y0 in units of the dish ``radius`` R (m), stored in m.
        """
        model = get_illumination(self.illumination)
        for name in self.illum_names:
            t, f = tables[name], model.coefficient(name).factor(radius)
            self.set(name, t["value"] * f, lower=t["lower"] * f, upper=t["upper"] * f,
                     free=t["free"] if free else None)

    def add_block(self, block: Block, value=0.0, lower=-np.inf, upper=np.inf,
                  free: bool = False) -> ParameterSpace:
        """Append ``block`` with start ``value``, bounds and free flag (broadcast); return self."""
        n = block.size
        self.blocks.append(block)
        self.values = np.r_[self.values, np.broadcast_to(np.asarray(value, float), n)]
        self.lower = np.r_[self.lower, np.broadcast_to(np.asarray(lower, float), n)]
        self.upper = np.r_[self.upper, np.broadcast_to(np.asarray(upper, float), n)]
        self.free = np.r_[self.free, np.broadcast_to(np.asarray(free, bool), n)]
        self._index()
        return self

    def set(self, name: str, value=None, *, lower=None, upper=None, free=None) -> None:
        """Set the values, bounds or free flags of block ``name`` (broadcast to its entries)."""
        sl = self.slice_of(name)
        for arr, val in ((self.values, value), (self.lower, lower), (self.upper, upper),
                         (self.free, free)):
            if val is not None:
                arr[sl] = np.ravel(np.broadcast_to(np.asarray(val, arr.dtype),
                                                   self.block(name).shape))

    def copy(self) -> ParameterSpace:
        """Independent copy (arrays copied; blocks are immutable and shared)."""
        out = copy.copy(self)
        for attr in ("values", "lower", "upper", "free"):
            setattr(out, attr, getattr(self, attr).copy())
        out.blocks = list(self.blocks)
        out._index()
        return out

    def at_order(self, order: int) -> ParameterSpace:
        """Copy in which K with n > ``order`` are fixed at 0 (the space keeps its full length)."""
        out = self.copy()
        k = out.slice_of("K")
        high = np.array([n > order for n, _ in self.nl])
        out.free[k][high] = False
        out.values[k][high] = 0.0
        return out

    # ---------------------------------------------------------------- layout
    def block(self, name: str) -> Block:
        """The block called ``name`` (KeyError naming the blocks otherwise)."""
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"no parameter block {name!r}; blocks: {[b.name for b in self.blocks]}")

    def has(self, name: str) -> bool:
        """Whether a block ``name`` exists."""
        return name in self._slices

    def slice_of(self, name: str) -> slice:
        """Slice of block ``name`` in the full vector."""
        if name not in self._slices:
            self.block(name)  # raises the KeyError naming the blocks
        return self._slices[name]

    @property
    def names(self) -> list[str]:
        """Label of every entry of the full vector."""
        return [lab for b in self.blocks for lab in b.labels]

    @property
    def units(self) -> list[str]:
        """Unit of every entry of the full vector."""
        return [b.unit for b in self.blocks for _ in range(b.size)]

    @property
    def nl(self) -> list[tuple[int, int]]:
        """(n, l) of every Zernike coefficient."""
        b = self.block("K")
        return list(zip(b.coords["n"], b.coords["l"], strict=True))

    @property
    def order(self) -> int:
        """Largest Zernike order."""
        return max(n for n, _ in self.nl)

    @property
    def n_maps(self) -> int:
        """Number of beam maps (entries of the amplitude block)."""
        return self.block("amp").size

    @property
    def illum_names(self) -> tuple[str, ...]:
        """Illumination coefficients (blocks with ``arg == 'illum'``), in model order."""
        return tuple(b.name for b in self.blocks if b.arg == "illum")

    @property
    def with_pointing(self) -> bool:
        """Whether a pointing block exists."""
        return self.has("pointing")

    # shorthands of slice_of for the standard blocks
    @property
    def k_slice(self) -> slice:  # noqa: D102
        return self.slice_of("K")

    @property
    def amp_slice(self) -> slice:  # noqa: D102
        return self.slice_of("amp")

    @property
    def offset_slice(self) -> slice:  # noqa: D102
        return self.slice_of("offset")

    @property
    def pointing_slice(self) -> slice | None:  # noqa: D102
        return self.slice_of("pointing") if self.with_pointing else None

    @property
    def illum_index(self) -> dict[str, int]:
        """Position of each illumination coefficient in the full vector."""
        return {n: self.slice_of(n).start for n in self.illum_names}

    @property
    def n_full(self) -> int:
        """Length of the full parameter vector."""
        return self.values.size

    @property
    def free_index(self) -> np.ndarray:
        """Positions of the free entries in the full vector."""
        return np.flatnonzero(self.free)

    @property
    def free_names(self) -> list[str]:
        """Labels of the free entries (the order of ``theta``)."""
        names = self.names
        return [names[i] for i in self.free_index]

    @property
    def theta(self) -> np.ndarray:
        """Current values of the free entries."""
        return self.values[self.free].copy()

    def free_of(self, name: str) -> np.ndarray:
        """Free mask of block ``name`` (its entries, flat)."""
        return self.free[self.slice_of(name)].copy()

    def full(self, theta) -> np.ndarray:
        """Full vector with the free entries replaced by ``theta`` (NumPy)."""
        out = self.values.copy()
        out[self.free] = theta
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds of the free entries."""
        return self.lower[self.free].copy(), self.upper[self.free].copy()

    def check_start(self, source: str = "start") -> None:
        """FitConfigError naming the parameter when a free start lies outside its bounds."""
        names, units = self.names, self.units
        for i in self.free_index:
            v, lo, hi = self.values[i], self.lower[i], self.upper[i]
            if not (lo <= v <= hi) or not math.isfinite(v):
                raise FitConfigError(
                    f"{source}: parameter {names[i]} starts at {v:g} {units[i]}, "
                    f"outside its bounds [{lo:g}, {hi:g}]"
                )

    # ---------------------------------------------------------------- the one mapping
    def block_values(self, full) -> dict:
        """Full vector (NumPy or tensor) -> {block name: value of the block's shape}."""
        return self.unpack_from(lambda sl: full[sl], by_block=True)

    def predict_kwargs(self, values: dict) -> dict:
        """{block name: value} -> keyword arguments of ``predict`` (blocks with an ``arg``).

        Blocks with a ``key`` are gathered into a dict under ``arg``; ``pointing`` is None
        when the space has no pointing block.
        """
        out: dict = {"pointing": None}
        for b in self.blocks:
            if b.arg is None:
                continue
            if b.key is None:
                out[b.arg] = values[b.name]
            else:
                out.setdefault(b.arg, {})[b.key] = values[b.name]
        out.setdefault("illum", {})
        return out

    def unpack_from(self, take, by_block: bool = False) -> dict:
        """Like :meth:`unpack` with ``take(slice) -> entries of the full vector`` supplied.

        The quick fit passes a ``take`` that reads two separate inputs (shape and linear
        entries); everything else uses :meth:`unpack` / :meth:`split`.
        """
        vals = {}
        for b in self.blocks:
            v = take(self.slice_of(b.name))
            vals[b.name] = v[0] if b.shape == () else v.reshape(b.shape)
        return vals if by_block else self.predict_kwargs(vals)

    def split(self, full) -> dict:
        """Full vector (NumPy or tensor) -> ``predict`` keyword arguments."""
        return self.predict_kwargs(self.block_values(full))

    def full_tensor(self, theta):
        """Tensor of the full vector: ``values`` with the free entries set to ``theta``."""
        theta = pt.as_tensor_variable(theta)
        return pt.set_subtensor(pt.as_tensor_variable(self.values)[self.free_index], theta)

    def unpack(self, theta) -> dict:
        """Free-parameter tensor ``theta`` (n_free,) -> ``predict`` keyword arguments (tensors).

        Fixed entries are constants at :attr:`values`.  ``predict(forward, **space.unpack(t))``
        is the model; a batched ``theta`` is not supported (vectorise the graph instead).
        """
        return self.split(self.full_tensor(theta))

    def params_dict(self) -> dict:
        """Current values by block: K, the illumination coefficients, amp, offset, pointing.

        Arrays are copies; scalars are floats; ``pointing`` is None without a pointing
        block.
        """
        out = {"pointing": None}
        for name, v in self.block_values(self.values).items():
            out[name] = float(v) if np.ndim(v) == 0 else np.array(v, float)
        return out

    def set_values(self, params: dict, source: str = "start") -> None:
        """Set values from a :meth:`params_dict`-form dict (K of any length: cut or padded).

        Entries that are None are skipped; unknown names raise FitConfigError.
        """
        unknown = set(params) - {b.name for b in self.blocks} - {"pointing"}
        if unknown:
            raise FitConfigError(f"{source}: unknown parameters {sorted(unknown)}")
        for name, val in params.items():
            if val is None or not self.has(name):
                continue
            sl = self.slice_of(name)
            arr = np.asarray(val, float).ravel()
            if name == "K":
                J = sl.stop - sl.start
                K = np.zeros(J)
                K[: min(arr.size, J)] = arr[:J]
                self.values[sl] = K
            elif arr.size == 1 or arr.size == sl.stop - sl.start:
                self.values[sl] = arr
            else:
                raise FitConfigError(
                    f"{source}: '{name}' has {arr.size} values, expected {sl.stop - sl.start}"
                )

    def __repr__(self) -> str:
        parts = [f"{b.name}{list(b.shape) if b.shape else ''}:{int(self.free_of(b.name).sum())}"
                 f"/{b.size} free" for b in self.blocks]
        return f"<ParameterSpace {self.illumination}; {', '.join(parts)}>"


def map_labels(data) -> list[str]:
    """Label of each map: its name when the names are unique, else its d_z in mm."""
    names = [m.name for m in data.maps]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"dz={m.d_z * 1e3:+.2f}mm" for m in data.maps]
