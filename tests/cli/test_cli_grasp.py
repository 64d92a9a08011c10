"""GRASP .grd input on the command line: convert and fit take the files with --dz (mm)."""

from __future__ import annotations

import numpy as np
import pytest

from bayesoof.cli import app as cli
from bayesoof.data.fitsio import read_beam_maps
from bayesoof.testing import grd_field as _field
from bayesoof.testing import write_grd as _write_grd


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def grd_files(tmp_path):
    return [_write_grd(tmp_path / f"map{k}.grd", _field(seed=k)) for k in range(3)]


def test_convert_grasp_to_fits(capsys, tmp_path, grd_files):
    out = tmp_path / "grasp.fits"
    code, stdout, _ = run(capsys, "convert", *grd_files, out, "--to", "nikolic",
                          "--dz", "-11.53", "0", "11.53", "--sigma-fraction", "1e-3")
    assert code == 0 and "3 maps" in stdout and "(grasp)" in stdout, stdout
    maps = read_beam_maps(out)
    np.testing.assert_allclose(maps.d_z, [-0.01153, 0.0, 0.01153], rtol=1e-12)
    power = np.abs(_field(seed=2)[:, :, 0].ravel()) ** 2
    # float32 FITS columns: 1e-6 relative
    np.testing.assert_allclose(maps.maps[2].beam, power, rtol=1e-6)
    np.testing.assert_allclose(maps.maps[2].sigma, 1e-3 * power.max(), rtol=1e-6)


@pytest.mark.parametrize(
    "extra, words",
    [
        ([], ["need --dz", "got no value"]),
        (["--dz", "0", "1"], ["need --dz", "got 2 value"]),
    ],
)
def test_grasp_input_errors_are_one_line(capsys, tmp_path, grd_files, extra, words):
    for sub in (["convert", *grd_files, tmp_path / "o.fits", "--to", "pyoof"],
                ["fit", *grd_files, "--telescope", "sardinia", "--out", tmp_path]):
        code, _, err = run(capsys, *sub, *extra)
        assert code == 1 and err.count("\n") == 1, err
        for w in words:
            assert w in err, (w, err)
    assert not (tmp_path / "o.fits").exists()


def test_fits_input_refuses_dz_and_several_files(capsys, tmp_path, grd_files):
    fits = tmp_path / "g.fits"
    assert run(capsys, "convert", *grd_files, fits, "--to", "nikolic", "--dz", "-1", "0",
               "1")[0] == 0
    code, _, err = run(capsys, "convert", fits, tmp_path / "h.fits", "--to", "pyoof",
                       "--dz", "1")
    assert code == 1 and "--dz is for GRASP .grd input" in err
    code, _, err = run(capsys, "convert", fits, fits, tmp_path / "h.fits", "--to", "pyoof")
    assert code == 1 and "expected one FITS file" in err
    code, _, err = run(capsys, "convert", fits, grd_files[0], tmp_path / "h.fits", "--to",
                       "pyoof", "--dz", "0", "1")
    assert code == 1 and "cannot be mixed" in err
