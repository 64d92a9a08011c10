"""TICRA GRASP .grd reader: a synthetic file written here, malformed files, the shared SRT files."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from bayesoof import testing as T
from bayesoof.data.containers import SPEED_OF_LIGHT, DataError
from bayesoof.data.grasp import read_grasp, read_grd
from bayesoof.testing import shared_dir

GRASP_DIR = shared_dir() / "data" / "grasp_srt"
SRT_FILES = ("ffmap_-out.grd", "ffmap_in.grd", "ffmap_+out.grd")


_write_grd, _field = T.write_grd, T.grd_field


def test_synthetic_grd_layout(tmp_path):
    """u varies fastest; the limits are the first and last grid points; power = |E_co|²."""
    f = _field()
    path = _write_grd(tmp_path / "a.grd", f)
    g = read_grd(path)
    assert g["shape"] == (4, 5)
    assert g["frequency"] == pytest.approx(26e9, rel=1e-12)
    np.testing.assert_allclose(g["u"][:5], np.linspace(-1e-3, 1e-3, 5), rtol=0, atol=1e-18)
    np.testing.assert_allclose(g["v"][::5], np.linspace(-2e-3, 2e-3, 4), rtol=0, atol=1e-18)
    # 1e-10 relative: the file holds 11 significant digits
    np.testing.assert_allclose(g["e_co"], f[:, :, 0].ravel(), rtol=1e-10)
    np.testing.assert_allclose(g["e_cx"], f[:, :, 1].ravel(), rtol=1e-10)
    # a centre offset (IX, IY) shifts the grid by whole steps
    g2 = read_grd(_write_grd(tmp_path / "b.grd", f, centre=(1, -2)))
    np.testing.assert_allclose(g2["u"] - g["u"], 0.5e-3, rtol=1e-12)
    np.testing.assert_allclose(g2["v"] - g["v"], -2 * 4e-3 / 3, rtol=1e-12)


def test_read_grasp_builds_beam_maps(tmp_path):
    fields = [_field(seed=s) for s in range(3)]
    paths = [_write_grd(tmp_path / f"m{k}.grd", fld) for k, fld in enumerate(fields)]
    maps = read_grasp(paths, [-11.53, 0.0, 11.53] * u.mm, sigma_fraction=1e-4)
    assert maps.n_maps == 3 and list(maps.d_z) == pytest.approx([-0.01153, 0.0, 0.01153])
    assert maps.wavelength == pytest.approx(SPEED_OF_LIGHT / 26e9, rel=1e-12)
    for m, fld in zip(maps.maps, fields, strict=True):
        power = np.abs(fld[:, :, 0].ravel()) ** 2
        np.testing.assert_allclose(m.beam, power, rtol=1e-9)
        np.testing.assert_allclose(m.sigma, 1e-4 * power.max(), rtol=1e-9)  # 11 digits
        assert m.grid() is not None  # the lattice fast path
    assert [m.name for m in maps.maps] == ["m0", "m1", "m2"]
    assert maps.meta["format"] == "grasp"
    plain = read_grasp(paths, [-0.01153, 0.0, 0.01153])  # plain floats are metres
    assert plain.maps[0].sigma is None and plain.d_z[2] == 0.01153


@pytest.mark.parametrize(
    "kwargs, lines, words",
    [
        ({}, {"drop_end": True}, ["no '++++'"]),
        (dict(head=("2", "1 3 2 1")), {}, ["KTYPE = 2"]),
        (dict(head=("1", "2 3 2 1")), {}, ["NSET = 2"]),
        (dict(head=("1", "1 3 2 4")), {}, ["IGRID = 4"]),
        (dict(head=("1", "1 3 x 1")), {}, ["NSET ICOMP NCOMP IGRID", "4 integers"]),
        (dict(nxny=(5, 5)), {}, ["20 data rows", "NX*NY = 25"]),
        (dict(klimit=1), {}, ["KLIMIT = 1"]),
        (dict(freq="twenty GHz"), {}, ["FREQUENCY"]),
        ({}, {"bad_row": True}, ["not numeric"]),
    ],
)
def test_malformed_grd_one_line_error(tmp_path, kwargs, lines, words):
    path = _write_grd(tmp_path / "bad.grd", _field(), **kwargs)
    text = path.read_text().splitlines()
    if lines.get("drop_end"):
        text = [s for s in text if s != "++++"]
    if lines.get("bad_row"):
        text[-3] = "0.1 0.2 abc 0.4"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as info:
        read_grd(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_read_grasp_argument_errors(tmp_path):
    p = _write_grd(tmp_path / "a.grd", _field())
    with pytest.raises(DataError, match="2 files but 1 d_z"):
        read_grasp([p, p], [0.0])
    with pytest.raises(FileNotFoundError, match="nope.grd"):
        read_grasp([tmp_path / "nope.grd"], [0.0])
    q = _write_grd(tmp_path / "b.grd", _field(), freq="30 GHz")
    with pytest.raises(DataError, match="frequency 30 GHz differs"):
        read_grasp([p, q], [0.0, 0.01])
    with pytest.raises(DataError, match="no in-focus map"):
        read_grasp([p], [0.01])


@pytest.mark.skipif(not GRASP_DIR.is_dir(), reason="shared GRASP SRT files absent")
def test_shared_srt_files():
    """The README's figures: 101 x 101 grids to ±1.407433e-3, 26 GHz, peaks 2.65e7 (minus)
    and 4.34e7 (plus); cross-polar 25-33 dB below co-polar."""
    maps = read_grasp([GRASP_DIR / f for f in SRT_FILES], [-0.01153, 0.0, 0.01153])
    assert maps.wavelength == pytest.approx(0.0115305, abs=1e-7)
    for m in maps.maps:
        g = m.grid()
        assert g is not None and (g.nu, g.nv) == (101, 101) and g.uniform
        assert np.max(np.abs(m.u)) == pytest.approx(1.407433e-3, rel=1e-9)
    peaks = [m.beam.max() for m in maps.maps]
    assert peaks[0] == pytest.approx(2.65e7, rel=0.01) and peaks[2] == pytest.approx(4.34e7,
                                                                                        rel=0.01)
    assert peaks[1] > 4 * peaks[2]
    g = read_grd(GRASP_DIR / "ffmap_in.grd")
    ratio = 10 * np.log10(np.max(np.abs(g["e_cx"]) ** 2) / np.max(np.abs(g["e_co"]) ** 2))
    assert -34 < ratio < -24, ratio
