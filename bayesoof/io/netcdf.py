"""netCDF-4 groups written with h5netcdf directly, in the layout xarray reads back.

:class:`Group` holds what ``xarray.Dataset(data_vars, coords=coords, attrs=attrs)`` takes
(the same tuples), and :func:`write_groups` writes several of them as the groups of one
file the way ``Dataset.to_netcdf(engine="h5netcdf")`` encodes them: dimension coordinates
as dimension-scale variables, other coordinates named in the ``coordinates`` attribute,
booleans as int8 with ``dtype = "bool"``, strings as variable-length UTF-8, numeric arrays
zlib-compressed.  ``xarray.open_dataset(path, group=...)`` (and ArviZ's ``from_netcdf``)
decode the file to the same Dataset as xarray's own writer would give (a test compares
them).  The point is start-up time: the quick fit writes its ``result.nc`` without
importing xarray, pandas and, through xarray's writer, dask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Group", "write_groups"]


@dataclass
class Group:
    """One dataset: ``data_vars`` and ``coords`` as given to ``xarray.Dataset``.

    Each entry is ``(dims, values)`` or ``(dims, values, attrs)``; a coordinate may also
    be plain values, then it is the dimension coordinate of the dimension of its name.
    """

    data_vars: dict
    coords: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    #: zlib on the numeric arrays (False for draws of noise, which do not compress)
    compress: bool = True

    @classmethod
    def from_xarray(cls, ds, compress: bool = True) -> Group:
        """The content of an ``xarray.Dataset`` (its variables' values, dims and attrs)."""
        def spec(v):
            return (tuple(v.dims), v.values, dict(v.attrs))

        return cls({k: spec(v) for k, v in ds.data_vars.items()},
                   coords={k: spec(v) for k, v in ds.coords.items()},
                   attrs=dict(ds.attrs), compress=compress)

    def to_xarray(self):
        """The same content as an ``xarray.Dataset``."""
        import xarray as xr

        return xr.Dataset(self.data_vars, coords=self.coords, attrs=self.attrs)

    def variables(self) -> tuple[dict, set]:
        """``{name: (dims, array, attrs)}`` of coordinates then data, and the coordinate names."""
        out = {}
        for name, spec in self.coords.items():
            if not isinstance(spec, tuple):
                spec = ((name,), spec)
            out[name] = _normalise(name, spec)
        for name, spec in self.data_vars.items():
            out[name] = _normalise(name, spec)
        return out, set(self.coords)


def _normalise(name: str, spec: tuple) -> tuple[tuple, np.ndarray, dict]:
    dims, values, *rest = spec
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    values = np.asarray(values)
    if values.ndim != len(dims):
        raise ValueError(f"netCDF variable {name!r}: {values.ndim} axes for dims {dims}")
    return dims, values, dict(rest[0]) if rest else {}


def _dimension_sizes(variables: dict) -> dict:
    sizes: dict[str, int] = {}
    for name, (dims, values, _) in variables.items():
        for d, n in zip(dims, values.shape, strict=True):
            if sizes.setdefault(d, n) != n:
                raise ValueError(f"netCDF variable {name!r}: dimension {d!r} has size {n}, "
                                 f"elsewhere {sizes[d]}")
    return sizes


def _write_group(grp, group: Group) -> None:
    import h5py

    variables, coord_names = group.variables()
    grp.dimensions = _dimension_sizes(variables)
    # coordinates that are not dimension coordinates: named in the group's attribute
    extra = [c for c in coord_names if variables[c][0] != (c,)]
    for name, (dims, values, attrs) in variables.items():
        attrs = dict(attrs)
        kind = values.dtype.kind
        if kind == "b":
            values = values.astype(np.int8)
            attrs["dtype"] = "bool"
        if kind in "UO":
            var = grp.create_variable(name, dims, dtype=h5py.string_dtype())
            var[...] = values.astype(str).astype(object)
        else:
            opts = {"compression": "gzip"} if values.ndim and group.compress else {}
            var = grp.create_variable(name, dims, data=values, **opts)
        for key, val in attrs.items():
            var.attrs[key] = val
    for key, val in group.attrs.items():
        grp.attrs[key] = val
    if extra:
        grp.attrs["coordinates"] = " ".join(extra)


def write_groups(path, groups: dict[str, Group]) -> None:
    """Write ``groups`` (name → :class:`Group`) as the groups of a new netCDF-4 file."""
    import h5netcdf

    with h5netcdf.File(str(path), "w") as f:
        for name, group in groups.items():
            _write_group(f.create_group(name), group)
