"""Start-up hygiene: what `bayesoof --help` and the quick fit import (issue 10).

Each check runs a fresh interpreter and lists the heavy packages it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pytensor", "pymc", "jax", "matplotlib", "arviz", "numpyro")


def _imported(code: str, tmp_path) -> dict:
    probe = (
        "import json, sys\n" + code + "\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, check=True, env=None)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_imports_no_heavy_package(tmp_path):
    code = (
        "from bayesoof.cli import main\n"
        "sys.argv = ['bayesoof', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    loaded = _imported(code, tmp_path)
    assert not any(loaded.values()), f"--help imported {[k for k, v in loaded.items() if v]}"


def test_quick_fit_imports_neither_pymc_jax_nor_plotting(tmp_path):
    """The fit and its run directory (result.nc included) without PyMC, JAX, matplotlib or
    ArviZ; the result.nc written without ArviZ reads back with ArviZ."""
    code = (
        "from bayesoof.data.fitsio import read_beam_maps\n"
        "from bayesoof.inference.fit import fit\n"
        "from bayesoof.simulate import example_path\n"
        "r = fit(read_beam_maps(example_path()), 'effelsberg', order=1)\n"
        "print(r.save('runs'))\n"
    )
    loaded = _imported(code, tmp_path)
    assert loaded["pytensor"]  # the probe did fit
    heavy = [k for k, v in loaded.items() if v and k != "pytensor"]
    assert not heavy, f"the quick fit imported {heavy}"
    import arviz as az

    (run,) = (tmp_path / "runs").iterdir()
    idata = az.from_netcdf(run / "result.nc")
    assert set(idata.groups()) == {"map_estimate", "laplace", "observed_data", "constant_data"}
    assert idata.map_estimate["K"].shape == (3,)  # order 1: (N+1)(N+2)/2 coefficients
    assert json.loads((run / "summary.json").read_text())  # the run is complete


def test_pytensor_signal_runs_on_first_use_only(tmp_path):
    """bayesoof defers pytensor.tensor.signal (and its scipy.signal import) until used."""
    code = (
        "import bayesoof.inference.fit\n"
        "deferred = 'scipy.signal' not in sys.modules\n"
        "import numpy as np, pytensor, pytensor.tensor as pt\n"
        "x = pt.vector('x')\n"
        "out = pytensor.function([x], pt.signal.convolve1d(x, x))(np.ones(3)).tolist()\n"
        "from pytensor.tensor.signal.conv import Convolve1d\n"
        "print(json.dumps([deferred, out, 'scipy.signal' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", "import json, sys\n" + code],
                         capture_output=True, text=True, cwd=tmp_path, check=True)
    deferred, conv, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert deferred and loaded  # not imported by the quick fit; there once used
    assert conv == [1.0, 2.0, 3.0, 2.0, 1.0]  # the real Op, working
