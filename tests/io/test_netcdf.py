"""result.nc written by h5netcdf alone (bayesoof.io.netcdf) decodes, through xarray and
ArviZ, to the same datasets as xarray's own writer gives."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayesoof.io import write_netcdf_groups
from bayesoof.io.netcdf import Group


def _groups() -> dict:
    rng = np.random.default_rng(0)
    est = Group(
        {"K": ("zernike", rng.standard_normal(3), {"units": "wave"}),
         "K_free": ("zernike", np.array([False, True, True])),
         "phase": (("y", "x"), rng.standard_normal((4, 5)), {"units": "rad"}),
         "c_dB": ((), -14.5, {"units": "dB"}),
         "converged_int": ((), np.int64(1)),
         "pointing": (("map", "axis"), rng.standard_normal((2, 2)))},
        coords={"zernike": ["K(0,0)", "K(1,-1)", "K(1,1)"],
                "n": ("zernike", [0, 1, 1]), "map": ["in", "out +"],
                "d_z": ("map", [0.0, 0.022]), "x": np.linspace(-1, 1, 5),
                "y": np.linspace(-1, 1, 4), "axis": ["u", "v"]},
        attrs={"order": 1, "chi2": 12.5, "telescope": "effelsberg", "converged": 1},
    )
    lap = Group(
        {"cov": (("param", "param_"), np.eye(2)), "theta": ("param", [1.0, 2.0])},
        coords={"param": ["a", "b"], "param_": ["a", "b"], "unit": ("param", ["wave", "rad"])},
    )
    return {"map_estimate": est, "laplace": lap}


def test_h5netcdf_writer_decodes_like_xarrays(tmp_path):
    groups = _groups()
    ours = write_netcdf_groups(tmp_path / "ours.nc", groups)
    theirs = write_netcdf_groups(tmp_path / "xarray.nc",
                                 {k: g.to_xarray() for k, g in groups.items()})
    for name in groups:
        with xr.open_dataset(ours, group=name, engine="h5netcdf") as a, \
                xr.open_dataset(theirs, group=name, engine="h5netcdf") as b:
            xr.testing.assert_identical(a.load(), b.load())
    with xr.open_dataset(ours, group="map_estimate", engine="h5netcdf") as a:
        assert a["K_free"].dtype == bool
        assert set(a.coords) == {"zernike", "n", "map", "d_z", "x", "y", "axis"}


def test_arviz_reads_the_groups(tmp_path):
    az = pytest.importorskip("arviz")
    path = write_netcdf_groups(tmp_path / "r.nc", _groups())
    idata = az.from_netcdf(path)
    assert set(idata.groups()) == {"map_estimate", "laplace"}
    assert list(idata.map_estimate["zernike"].values) == ["K(0,0)", "K(1,-1)", "K(1,1)"]
    assert float(idata.map_estimate["d_z"][1]) == 0.022


def test_bad_group_is_refused_and_leaves_nothing(tmp_path):
    bad = {"g": Group({"a": ("x", np.zeros(3)), "b": ("x", np.zeros(4))})}
    with pytest.raises(ValueError, match="dimension 'x' has size 4"):
        write_netcdf_groups(tmp_path / "bad.nc", bad)
    assert list(tmp_path.iterdir()) == []


def test_inference_data_written_by_h5netcdf_reads_as_arviz_writes_it(tmp_path):
    """posterior.nc (write_inference_data): every group decodes, through ArviZ, to what
    ArviZ's own writer gives; the posterior predictive is stored uncompressed."""
    az = pytest.importorskip("arviz")
    import h5py

    from bayesoof.io import write_inference_data

    rng = np.random.default_rng(1)
    idata = az.from_dict(
        posterior={"K": rng.standard_normal((2, 5, 3)), "c_dB": rng.standard_normal((2, 5))},
        sample_stats={"diverging": rng.random((2, 5)) < 0.2, "lp": rng.standard_normal((2, 5))},
        posterior_predictive={"beam": rng.standard_normal((1, 4, 6))},
        observed_data={"beam": rng.standard_normal(6)},
        constant_data={"u": rng.standard_normal(6), "K_start": np.zeros(3)},
        coords={"zernike": ["K(0,0)", "K(1,-1)", "K(1,1)"], "sample": np.arange(6),
                "zernike_all": ["a", "b", "c"]},
        dims={"K": ["zernike"], "beam": ["sample"], "u": ["sample"],
              "K_start": ["zernike_all"]},
    )
    idata.posterior = idata.posterior.assign_coords(n=("zernike", [0, 1, 1]))
    idata.constant_data.attrs.update({"telescope": "effelsberg", "order": 1,
                                      "settings": '{"draws": 5}'})
    ours = write_inference_data(tmp_path / "ours.nc", idata)
    theirs = tmp_path / "arviz.nc"
    idata.to_netcdf(str(theirs), engine="h5netcdf")
    a, b = az.from_netcdf(ours), az.from_netcdf(theirs)
    assert a.groups() == b.groups() == idata.groups()
    for name in idata.groups():
        xr.testing.assert_identical(getattr(a, name).load(), getattr(b, name).load())
    with h5py.File(ours) as f:
        assert f["posterior/K"].compression == "gzip"
        assert f["posterior_predictive/beam"].compression is None
