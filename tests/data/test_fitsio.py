"""Tests of bayesoof.data.fitsio: the pyoof and Nikolic FITS formats, errors, atomic writes."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from bayesoof import testing as T
from bayesoof.data.containers import (
    SPEED_OF_LIGHT,
    BeamMap,
    BeamMaps,
    DataError,
    DeadSampleWarning,
)
from bayesoof.data.fitsio import (
    PYOOF_TABLES,
    DataWarning,
    detect_format,
    read_beam_maps,
    read_nikolic,
    read_pyoof,
    write_beam_maps,
    write_nikolic,
    write_pyoof,
)

DATA_DIR = T.shared_dir() / "data"
EXAMPLE = DATA_DIR / "pyoof_example0.fits"


@pytest.fixture
def example() -> Path:
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} not available")
    return EXAMPLE


# ------------------------------------------------------------------ helpers
def _raw_fits(path: Path, primary: dict, tables: list[tuple[str | None, dict, dict]]) -> Path:
    """Write a FITS file with astropy directly (independent of the code under test)."""
    return T.write_raw_fits(path, primary, tables, float_format="E")


def _pyoof_spec(n: int = 16, dz=(-0.02, 0.0, 0.02)):
    rng = np.random.default_rng(1)
    primary = {
        "FREQ": 32e9,
        "WAVEL": SPEED_OF_LIGHT / 32e9,
        "MEANEL": 45,
        "OBJECT": "3C286",
        "DATE_OBS": "2020-01-01",
    }
    tables = [
        (
            name,
            {"DZ": d},
            {"U": rng.normal(size=n) * 1e-3, "V": rng.normal(size=n) * 1e-3, "BEAM": rng.random(n)},
        )
        for name, d in zip(PYOOF_TABLES, dz, strict=True)
    ]
    return primary, tables


def _nikolic_spec(n: int = 12, dz=(0.0, -0.01, 0.01), sigma=True):
    rng = np.random.default_rng(2)
    primary = {"FREQ": 43e9, "MEANEL": 30.5, "OBJECT": "3C84", "TELESC": "EFFELSBERG"}
    tables = []
    for k, d in enumerate(dz):
        cols = {
            "DX": rng.normal(size=n) * 1e-3,
            "DY": rng.normal(size=n) * 1e-3,
            "FNu": rng.random(n),
        }
        if sigma:
            cols["UFNu"] = 0.1 + rng.random(n)
        cols["Time"] = np.arange(n, dtype=float)
        tables.append((f"MAP{k}", {"DZ": d}, cols))
    return primary, tables


def _beam_maps(dz, sigma=True, n=40, seed=0) -> BeamMaps:
    rng = np.random.default_rng(seed)
    k = len(dz)
    return BeamMaps.from_arrays(
        u=[rng.normal(size=n) * 1e-3 for _ in range(k)],
        v=[rng.normal(size=n) * 1e-3 for _ in range(k)],
        beam=[rng.random(n) for _ in range(k)],
        d_z=list(dz),
        wavelength=0.007,
        sigma=[0.05 + rng.random(n) for _ in range(k)] if sigma else None,
        names=[f"scan{i}" for i in range(k)],
        meta={"MEANEL": 52.25, "OBJECT": "3C286", "DATE_OBS": "2024-05-01", "TELESC": "EFF100"},
    )


def _assert_same_maps(a: BeamMaps, b: BeamMaps, sigma=True) -> None:
    assert a.n_maps == b.n_maps
    assert a.wavelength == b.wavelength
    for ma, mb in zip(a.maps, b.maps, strict=True):
        assert ma.d_z == mb.d_z
        np.testing.assert_array_equal(ma.u, mb.u)
        np.testing.assert_array_equal(ma.v, mb.v)
        np.testing.assert_array_equal(ma.beam, mb.beam)
        if sigma and ma.sigma is not None:
            np.testing.assert_array_equal(ma.sigma, mb.sigma)
        else:
            assert mb.sigma is None


def _q(path) -> str:
    return re.escape(str(path))


# ------------------------------------------------------------------ the real pyoof file
def test_read_pyoof_example(example):
    maps = read_pyoof(example)
    assert maps.n_maps == 3
    assert [m.size for m in maps.maps] == [9409] * 3
    np.testing.assert_allclose(maps.d_z, [-0.022, 0.0, 0.022], rtol=0, atol=1e-15)
    assert maps.wavelength == pytest.approx(0.0093685143125, rel=1e-12)
    assert maps.meta["FREQ"] == pytest.approx(32e9, rel=1e-12)
    assert maps.meta["WAVEL"] == pytest.approx(0.0093685143125, rel=1e-12)
    assert maps.meta["MEANEL"] == 0.0 and isinstance(maps.meta["MEANEL"], float)
    assert maps.meta["OBJECT"] == "created"
    assert maps.meta["DATE_OBS"] == "created"
    assert maps.meta["source"] == str(example)
    assert maps.meta["format"] == "pyoof"
    assert [m.name for m in maps.maps] == list(PYOOF_TABLES)
    for m in maps.maps:
        assert m.u.dtype == m.v.dtype == m.beam.dtype == np.float64
        assert m.sigma is None
        g = m.grid()
        assert g is not None and (g.nu, g.nv) == (97, 97)
    # values and order against astropy's own read of the same columns
    with fits.open(example) as raw:
        for m, name in zip(maps.maps, PYOOF_TABLES, strict=True):
            np.testing.assert_array_equal(m.u, raw[name].data["U"].astype(np.float64))
            np.testing.assert_array_equal(m.v, raw[name].data["V"].astype(np.float64))
            np.testing.assert_array_equal(m.beam, raw[name].data["BEAM"].astype(np.float64))
        raw_peak = float(np.max(raw["ZERO OOF"].data["BEAM"]))
    assert float(np.max(maps.maps[1].beam)) == raw_peak
    assert raw_peak == pytest.approx(348889.12, rel=1e-7)


def test_autodetect_example(example):
    assert detect_format(example) == "pyoof"
    _assert_same_maps(read_beam_maps(example), read_pyoof(example))


def test_pyoof_round_trip_example(example, tmp_path):
    maps = read_pyoof(example)
    out = tmp_path / "copy.fits"
    write_pyoof(maps, out)
    back = read_beam_maps(out)
    assert back.meta["format"] == "pyoof"
    _assert_same_maps(maps, back)
    for key in ("FREQ", "WAVEL", "MEANEL", "OBJECT", "DATE_OBS", "AUTHOR"):
        assert back.meta[key] == maps.meta[key]
    assert fits.getheader(out)["FREQ"] == 32e9  # the file's own FREQ, not c / WAVEL


def test_nikolic_round_trip_example(example, tmp_path):
    maps = read_pyoof(example)
    out = tmp_path / "nik.fits"
    write_nikolic(maps, out)
    assert detect_format(out) == "nikolic"  # despite the pyoof table names
    back = read_beam_maps(out)
    assert back.meta["format"] == "nikolic"
    _assert_same_maps(maps, back)


# ------------------------------------------------------------------ round trips
def test_pyoof_round_trip_sorts_and_drops_sigma(tmp_path):
    maps = _beam_maps([0.02, 0.0, -0.02], sigma=True)
    out = tmp_path / "p.fits"
    with pytest.warns(DataWarning, match="no noise column"):
        write_beam_maps(maps, out, format="pyoof")
    back = read_pyoof(out)
    assert back.d_z.tolist() == [-0.02, 0.0, 0.02]
    assert [m.name for m in back.maps] == list(PYOOF_TABLES)
    _assert_same_maps(maps.with_maps(maps.maps[::-1]), back, sigma=False)
    assert back.meta["MEANEL"] == 52.25
    assert back.meta["TELESC"] == "EFF100"


@pytest.mark.parametrize(
    "dz", [(0.0, 0.015), (-0.03, -0.01, 0.0, 0.01, 0.03)], ids=["2 maps", "5 maps"]
)
def test_nikolic_round_trip(tmp_path, dz):
    maps = _beam_maps(dz, sigma=True)
    out = tmp_path / "n.fits"
    write_beam_maps(maps, out, format="nikolic")
    with fits.open(out) as raw:
        assert [h.name for h in raw[1:]] == [f"SCAN{i}" for i in range(len(dz))]
        assert "UFNU" in raw[1].columns.names
        assert raw[0].header["FREQ"] == pytest.approx(SPEED_OF_LIGHT / 0.007)
    back = read_nikolic(out)
    _assert_same_maps(maps, back)
    assert [m.name for m in back.maps] == [f"SCAN{i}" for i in range(len(dz))]
    for key in ("MEANEL", "OBJECT", "DATE_OBS", "TELESC"):
        assert back.meta[key] == maps.meta[key]
    assert back.meta["WAVEL"] == 0.007
    assert read_beam_maps(out).n_maps == len(dz)


def test_nikolic_round_trip_mixed_sigma(tmp_path):
    maps = _beam_maps((-0.01, 0.0, 0.01), sigma=True)
    m1 = maps.maps[1]
    no_sigma = BeamMap(u=m1.u, v=m1.v, beam=m1.beam, d_z=m1.d_z, sigma=None, name="nosig")
    maps = maps.with_maps([maps.maps[0], no_sigma])
    out = tmp_path / "mixed.fits"
    write_nikolic(maps, out)
    back = read_nikolic(out)
    assert back.maps[0].sigma is not None and back.maps[1].sigma is None
    _assert_same_maps(maps, back)


def test_nikolic_unknown_meta_written_undefined(tmp_path):
    maps = _beam_maps((0.0, 0.01), sigma=False)
    maps = BeamMaps(maps.maps, maps.wavelength, {})
    out = tmp_path / "bare.fits"
    write_nikolic(maps, out)
    hdr = fits.getheader(out)
    for key in ("FREQ", "WAVEL", "MEANEL", "OBJECT", "DATE_OBS"):
        assert key in hdr
    back = read_nikolic(out)
    assert back.meta["MEANEL"] is None and back.meta["OBJECT"] is None
    assert all(m.sigma is None for m in back.maps)


# ------------------------------------------------------------------ Nikolic-style input
def test_read_nikolic_style_file(tmp_path):
    primary, tables = _nikolic_spec()
    path = _raw_fits(tmp_path / "eff.fits", primary, tables)
    assert detect_format(path) == "nikolic"
    maps = read_beam_maps(path)
    assert maps.meta["format"] == "nikolic"
    assert maps.wavelength == pytest.approx(SPEED_OF_LIGHT / 43e9, rel=1e-15)
    assert maps.meta["FREQ"] == 43e9 and maps.meta["TELESC"] == "EFFELSBERG"
    assert maps.meta["MEANEL"] == 30.5 and maps.meta["DATE_OBS"] is None
    assert maps.d_z.tolist() == [0.0, -0.01, 0.01]
    for m, (name, _, cols) in zip(maps.maps, tables, strict=True):
        assert m.name == name
        assert m.sigma.dtype == np.float64
        np.testing.assert_array_equal(m.u, cols["DX"].astype(np.float32).astype(np.float64))
        np.testing.assert_array_equal(m.beam, cols["FNu"].astype(np.float32).astype(np.float64))
        np.testing.assert_array_equal(m.sigma, cols["UFNu"].astype(np.float32).astype(np.float64))


def test_read_nikolic_wavelength_alias(tmp_path):
    primary, tables = _nikolic_spec(sigma=False)
    del primary["FREQ"]
    primary["WAVE"] = 0.0069
    maps = read_nikolic(_raw_fits(tmp_path / "w.fits", primary, tables))
    assert maps.wavelength == 0.0069
    assert maps.meta["WAVEL"] == 0.0069
    assert maps.meta["FREQ"] == pytest.approx(SPEED_OF_LIGHT / 0.0069)
    assert "WAVE" not in maps.meta
    assert all(m.sigma is None for m in maps.maps)


def test_read_nikolic_zero_ufnu_is_not_given(tmp_path):
    primary, tables = _nikolic_spec()
    tables[0][2]["UFNu"] = np.zeros(12)
    path = _raw_fits(tmp_path / "z.fits", primary, tables)
    with pytest.warns(DataWarning, match=r"'MAP0'.*UFNU is zero everywhere"):
        maps = read_nikolic(path)
    assert maps.maps[0].sigma is None and maps.maps[1].sigma is not None


def test_read_nikolic_negative_ufnu(tmp_path):
    primary, tables = _nikolic_spec()
    tables[1][2]["UFNu"][3] = -1.0
    path = _raw_fits(tmp_path / "neg.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r".*'MAP1'.*UFNU.*> 0"):
        read_nikolic(path)


# ------------------------------------------------------------------ header variants
def test_pyoof_freq_only_and_wavel_only(tmp_path):
    primary, tables = _pyoof_spec()
    del primary["WAVEL"]
    maps = read_pyoof(_raw_fits(tmp_path / "f.fits", primary, tables))
    assert maps.wavelength == pytest.approx(SPEED_OF_LIGHT / 32e9, rel=1e-15)
    primary, tables = _pyoof_spec()
    del primary["FREQ"]
    primary["WAVEL"] = 0.01
    maps = read_pyoof(_raw_fits(tmp_path / "w.fits", primary, tables))
    assert maps.wavelength == 0.01
    assert maps.meta["FREQ"] == pytest.approx(SPEED_OF_LIGHT / 0.01)


def test_freq_wavel_disagree_warns_then_fails(tmp_path):
    """0.5 % apart: a warning, the wavelength wins; 2x apart: an error (which is right?)."""
    primary, tables = _pyoof_spec()
    lam = SPEED_OF_LIGHT / primary["FREQ"]
    primary["WAVEL"] = lam * 1.005
    path = _raw_fits(tmp_path / "d.fits", primary, tables)
    with pytest.warns(DataWarning, match=_q(path) + r".*FREQ.*WAVEL.*disagree"):
        maps = read_pyoof(path)
    assert maps.wavelength == lam * 1.005
    primary["WAVEL"] = 0.02
    path = _raw_fits(tmp_path / "e.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r".*FREQ.*WAVEL.*disagree.*within 1%"):
        read_pyoof(path)


def test_pyoof_dz_sign_mismatch_warns(tmp_path):
    primary, tables = _pyoof_spec(dz=(0.02, 0.0, -0.02))
    path = _raw_fits(tmp_path / "s.fits", primary, tables)
    with pytest.warns(DataWarning) as record:
        maps = read_pyoof(path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 1  # one warning (one line) per file, naming both tables
    assert messages[0].startswith(f"{path}: table 'MINUS OOF' has DZ = 0.02 m; expected DZ < 0")
    assert "; table 'PLUS OOF' has DZ = -0.02 m; expected DZ > 0" in messages[0]
    assert maps.d_z.tolist() == [0.02, 0.0, -0.02]


# ------------------------------------------------------------------ bad input
def test_missing_file(tmp_path):
    path = tmp_path / "nope.fits"
    with pytest.raises(FileNotFoundError, match=_q(path)):
        read_beam_maps(path)
    with pytest.raises(FileNotFoundError, match=_q(path)):
        read_pyoof(path)
    with pytest.raises(FileNotFoundError, match=_q(path)):
        read_nikolic(str(path))


def test_not_a_fits_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is not FITS\n")
    for reader in (read_beam_maps, read_pyoof, read_nikolic):
        with pytest.raises(DataError, match=_q(path) + r": not a valid FITS file"):
            reader(path)
    with pytest.raises(DataError, match=r"is a directory"):
        read_beam_maps(tmp_path)


def test_truncated_file(tmp_path, example):
    path = tmp_path / "trunc.fits"
    path.write_bytes(example.read_bytes()[:20000])
    with pytest.raises(DataError, match=_q(path) + r": not a valid FITS file.*truncated"):
        read_beam_maps(path)


def test_missing_pyoof_table(tmp_path):
    primary, tables = _pyoof_spec()
    path = _raw_fits(tmp_path / "t.fits", primary, tables[:2])
    with pytest.raises(DataError, match=_q(path) + r": missing table\(s\) 'PLUS OOF'"):
        read_beam_maps(path)


def test_no_tables_at_all(tmp_path):
    primary, _ = _pyoof_spec()
    path = _raw_fits(tmp_path / "empty.fits", primary, [])
    with pytest.raises(DataError, match=_q(path) + r": cannot detect the beam-map format"):
        read_beam_maps(path)
    with pytest.raises(DataError, match=_q(path) + r": missing table\(s\) 'MINUS OOF'"):
        read_pyoof(path)
    with pytest.raises(DataError, match=_q(path) + r": no binary tables"):
        read_nikolic(path)


@pytest.mark.parametrize("fmt", ["pyoof", "nikolic"])
def test_missing_dz(tmp_path, fmt):
    primary, tables = _pyoof_spec() if fmt == "pyoof" else _nikolic_spec()
    del tables[1][1]["DZ"]
    path = _raw_fits(tmp_path / "dz.fits", primary, tables)
    name = tables[1][0]
    with pytest.raises(DataError, match=_q(path) + rf": table '{name}'.*DZ.*missing"):
        read_beam_maps(path)


def test_non_numeric_dz(tmp_path):
    primary, tables = _pyoof_spec()
    tables[2][1]["DZ"] = "far"
    path = _raw_fits(tmp_path / "dz.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r": table 'PLUS OOF'.*DZ must be a number"):
        read_pyoof(path)


@pytest.mark.parametrize("fmt", ["pyoof", "nikolic"])
def test_missing_wavelength_and_frequency(tmp_path, fmt):
    primary, tables = _pyoof_spec() if fmt == "pyoof" else _nikolic_spec()
    primary.pop("FREQ")
    primary.pop("WAVEL", None)
    path = _raw_fits(tmp_path / "h.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r": primary header.*WAVEL.*FREQ"):
        read_beam_maps(path)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("WAVEL", 0.0, r"WAVEL must be a positive wavelength in m"),
        ("WAVEL", -0.007, r"WAVEL must be a positive wavelength in m"),
        ("FREQ", -3e10, r"FREQ must be a positive frequency in Hz"),
        ("WAVEL", "seven", r"WAVEL must be a number \(m\)"),
        ("MEANEL", "high", r"MEANEL must be a number \(deg\)"),
    ],
)
def test_bad_header_values(tmp_path, key, value, match):
    primary, tables = _pyoof_spec()
    primary[key] = value
    path = _raw_fits(tmp_path / "bad.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r": primary header: keyword " + match):
        read_pyoof(path)


def test_nonpositive_wavelength_caught_by_validate():
    maps = _beam_maps((0.0, 0.01))
    with pytest.raises(DataError, match=r"wavelength must be a positive"):
        BeamMaps(maps.maps, -1.0, {"source": "x.fits"}).validate()


@pytest.mark.parametrize("fmt", ["pyoof", "nikolic"])
def test_missing_column(tmp_path, fmt):
    primary, tables = _pyoof_spec() if fmt == "pyoof" else _nikolic_spec()
    col = "BEAM" if fmt == "pyoof" else "FNu"
    del tables[0][2][col]
    path = _raw_fits(tmp_path / "c.fits", primary, tables)
    name = tables[0][0]
    reader = read_pyoof if fmt == "pyoof" else read_nikolic
    with pytest.raises(
        DataError, match=_q(path) + rf": table '{name}': missing column\(s\) {col.upper()}"
    ):
        reader(path)


def test_vector_column(tmp_path):
    primary, tables = _pyoof_spec()
    tables[1][2]["U"] = np.zeros((16, 2))
    path = _raw_fits(tmp_path / "vec.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r": table 'ZERO OOF': column U .*one value"):
        read_pyoof(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_samples_error(tmp_path, bad):
    """Non-finite coordinates are an error; non-finite beam values are dead samples."""
    primary, tables = _pyoof_spec()
    tables[1][2]["BEAM"][[2, 5]] = bad
    tables[1][2]["V"][[5, 9]] = bad
    path = _raw_fits(tmp_path / "nan.fits", primary, tables)
    with pytest.raises(
        DataError,
        match=_q(path) + r": table 'ZERO OOF': 2 of 16 samples .*non-finite.*column\(s\) V;",
    ):
        read_pyoof(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0])
def test_dead_samples_masked_with_one_warning(tmp_path, bad):
    """NaN/inf beam values, or exact zeros where the baseline is not zero, are masked with
    ONE warning naming each map and its count."""
    primary, tables = _pyoof_spec()
    for t in tables:
        t[2]["BEAM"] = t[2]["BEAM"] + 40.0  # a baseline of 40, as in real data
    tables[1][2]["BEAM"][[2, 5]] = bad
    tables[2][2]["BEAM"][7] = bad
    path = _raw_fits(tmp_path / "dead.fits", primary, tables)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = read_pyoof(path)
    dead = [w for w in caught if issubclass(w.category, DeadSampleWarning)]
    assert len(dead) == 1, [str(w.message) for w in caught]
    msg = str(dead[0].message)
    assert "map ZERO OOF: 2 of 16" in msg and "map PLUS OOF: 1 of 16" in msg, msg
    assert [m.size for m in maps.maps] == [16, 14, 15]
    assert maps.meta["dead_samples"] == {"ZERO OOF": 2, "PLUS OOF": 1}
    assert np.all(np.isfinite(maps.maps[1].beam)) and np.all(maps.maps[1].beam != 0)


def test_zeros_kept_when_baseline_is_zero(tmp_path):
    """A baseline-subtracted map (median ~0) keeps its exact zeros: they may be real."""
    primary, tables = _pyoof_spec()
    rng = np.random.default_rng(1)
    tables[1][2]["BEAM"] = rng.normal(0.0, 1.0, 16)
    tables[1][2]["BEAM"][3] = 0.0
    path = _raw_fits(tmp_path / "zero.fits", primary, tables)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeadSampleWarning)
        maps = read_pyoof(path)
    assert maps.maps[1].size == 16


def test_nonfinite_samples_dropped(tmp_path):
    primary, tables = _nikolic_spec()
    tables[2][2]["FNu"][[0, 7]] = np.nan
    tables[2][2]["UFNu"][4] = np.inf
    path = _raw_fits(tmp_path / "nan.fits", primary, tables)
    with pytest.warns(DataWarning) as record:  # one warning (one line) for the file
        maps = read_beam_maps(path, drop_nonfinite=True)
    (msg,) = [str(w.message) for w in record]
    assert msg.startswith(f"{path}: table 'MAP2': dropped 1 of 12 samples"), msg
    assert re.search(r"; masked dead samples .*map MAP2: 2 of 11 \(2 NaN/inf\)", msg), msg
    assert [m.size for m in maps.maps] == [12, 12, 9]
    keep = np.ones(12, bool)
    keep[[0, 4, 7]] = False
    np.testing.assert_array_equal(
        maps.maps[2].beam, tables[2][2]["FNu"].astype(np.float32).astype(float)[keep]
    )
    assert maps.meta["dropped_nonfinite"] == {"MAP2": 1}
    assert maps.meta["dead_samples"] == {"MAP2": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean maps: no warning
        read_nikolic(_raw_fits(tmp_path / "ok.fits", *_nikolic_spec()), drop_nonfinite=True)


def test_empty_map(tmp_path):
    primary, tables = _pyoof_spec()
    tables[2] = (tables[2][0], tables[2][1], {k: [] for k in ("U", "V", "BEAM")})
    path = _raw_fits(tmp_path / "e.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r": map PLUS OOF: the map has no samples"):
        read_pyoof(path)


def test_all_nonfinite_dropped_leaves_empty_map(tmp_path):
    primary, tables = _pyoof_spec()
    tables[0][2]["BEAM"][:] = np.nan
    path = _raw_fits(tmp_path / "e.fits", primary, tables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error alone: no warning line before it
        with pytest.raises(DataError, match=_q(path) + r": map MINUS OOF: the map has no samp"):
            read_pyoof(path, drop_nonfinite=True)


def test_duplicate_dz(tmp_path):
    primary, tables = _nikolic_spec(dz=(0.0, 0.01, 0.01))
    path = _raw_fits(tmp_path / "dup.fits", primary, tables)
    # (data.py formats the value with repr, which reads np.float64(0.01) under NumPy 2)
    with pytest.raises(DataError, match=_q(path) + r": two maps have the same d_z = \S*0\.01"):
        read_nikolic(path)


def test_no_in_focus_map(tmp_path):
    primary, tables = _nikolic_spec(dz=(-0.01, 0.01))
    path = _raw_fits(tmp_path / "nofocus.fits", primary, tables)
    with pytest.raises(DataError, match=_q(path) + r": no in-focus map \(d_z = 0\)"):
        read_beam_maps(path)


def test_columns_of_different_lengths():
    with pytest.raises(DataError, match=r"field 'sigma' has 3 samples but 'beam' has 4"):
        BeamMaps.from_arrays(
            u=[np.zeros(4)],
            v=[np.zeros(4)],
            beam=[np.ones(4)],
            d_z=[0.0],
            wavelength=0.01,
            sigma=[np.ones(3)],
        )
    with pytest.raises(DataError, match=r"field 'v' has 5 samples but 'beam' has 4"):
        BeamMaps.from_arrays(
            u=[np.zeros(4)], v=[np.zeros(5)], beam=[np.ones(4)], d_z=[0.0], wavelength=0.01
        )


def test_bad_format_arguments(tmp_path, example):
    with pytest.raises(ValueError, match="format must be"):
        read_beam_maps(example, format="gbt")
    with pytest.raises(ValueError, match="format must be"):
        write_beam_maps(_beam_maps((0.0, 0.01)), tmp_path / "x.fits", format="fits")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ writer checks
@pytest.mark.parametrize("dz", [(0.0, 0.01), (-0.02, -0.01, 0.0), (-0.02, -0.01, 0.0, 0.01, 0.02)])
def test_write_pyoof_needs_three_signed_maps(tmp_path, dz):
    out = tmp_path / "p.fits"
    with pytest.raises(DataError, match=_q(out) + r": the pyoof format holds exactly three maps"):
        write_pyoof(_beam_maps(dz, sigma=False), out)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_invalid_maps(tmp_path):
    maps = _beam_maps((0.0, 0.01))
    m0 = maps.maps[0]
    short = BeamMap(u=m0.u, v=m0.v, beam=m0.beam, d_z=0.0, sigma=m0.sigma[:-1], name="short")
    bad = maps.with_maps([short, maps.maps[1]])
    out = tmp_path / "n.fits"
    with pytest.raises(DataError, match=_q(out) + r": refusing to write.*field 'sigma'"):
        write_nikolic(bad, out)
    nofocus = maps.with_maps([maps.maps[1]])
    with pytest.raises(DataError, match=_q(out) + r": refusing to write.*no in-focus"):
        write_nikolic(nofocus, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["pyoof", "nikolic"])
def test_overwrite_refused_then_allowed(tmp_path, fmt):
    out = tmp_path / "o.fits"
    out.write_bytes(b"precious")
    maps = _beam_maps((-0.01, 0.0, 0.01), sigma=False)
    with pytest.raises(FileExistsError, match=_q(out)):
        write_beam_maps(maps, out, format=fmt)
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["o.fits"]
    write_beam_maps(maps, out, format=fmt, overwrite=True)
    _assert_same_maps(maps, read_beam_maps(out), sigma=False)
    assert [p.name for p in tmp_path.iterdir()] == ["o.fits"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_failing_write_leaves_nothing(tmp_path, monkeypatch, overwrite):
    maps = _beam_maps((0.0, 0.01))
    out = tmp_path / "n.fits"
    if overwrite:
        out.write_bytes(b"old content")

    def broken_writeto(self, fileobj, *args, **kwargs):
        fileobj.write(b"SIMPLE  =                    T" + b" " * 100)  # half a header
        raise OSError("No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", broken_writeto)
    with pytest.raises(OSError, match="No space left"):
        write_nikolic(maps, out, overwrite=overwrite)
    expected = ["n.fits"] if overwrite else []
    assert [p.name for p in tmp_path.iterdir()] == expected
    if overwrite:
        assert out.read_bytes() == b"old content"


def test_write_into_missing_directory(tmp_path):
    out = tmp_path / "no" / "such" / "dir.fits"
    with pytest.raises(FileNotFoundError, match=_q(out)):
        write_nikolic(_beam_maps((0.0, 0.01)), out)
