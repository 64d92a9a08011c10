import json
import os
import re
import stat

import numpy as np
import pytest

from bayesoof import testing as T
from bayesoof.io import (
    SummaryError,
    check_summary,
    clean,
    new_run_dir,
    read_summary,
    staged_run,
    write_csv,
    write_json,
    write_summary,
    write_text,
)
from bayesoof.io.summary import SCHEMA_VERSION, documented_keys


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


# ---------------------------------------------------------------- atomic writers
def test_atomic_write_honours_the_umask(tmp_path, umask_027):
    path = write_text(tmp_path / "a.txt", "hello\n")
    assert path.read_text() == "hello\n"
    # 0o666 & ~0o027 = 0o640 (mkstemp would have left 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_atomic_write_never_overwrites_unless_asked(tmp_path):
    path = write_text(tmp_path / "a.txt", "first")
    with pytest.raises(FileExistsError, match="a.txt: file exists"):
        write_text(path, "second")
    assert path.read_text() == "first"
    write_text(path, "second", overwrite=True)
    assert path.read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporary left


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="cannot write a object"):
        write_json(tmp_path / "s.json", {"x": object()})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_text(tmp_path / "missing" / "a.txt", "x")


def test_csv_and_json_contents(tmp_path):
    write_csv(tmp_path / "t.csv", [["a", "b"], [1, 2.5]])
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,2.5\n"
    write_json(tmp_path / "t.json", {"x": np.float64(np.nan), "y": np.arange(2)})
    assert json.loads((tmp_path / "t.json").read_text()) == {"x": None, "y": [0, 1]}


def test_clean_converts_numpy_and_non_finite():
    out = clean({1: (np.int64(2), np.bool_(True), np.inf, np.array([1.5, np.nan]))})
    assert out == {"1": [2, True, None, [1.5, None]]}
    assert type(out["1"][0]) is int and type(out["1"][1]) is bool


# ---------------------------------------------------------------- run directories
def test_new_run_dir_numbers_and_staged_run(tmp_path, umask_027):
    assert new_run_dir(tmp_path, "x").name == "x-000"
    assert new_run_dir(tmp_path, "x").name == "x-001"
    out = tmp_path / "runs"
    with staged_run(out, "sim") as (staging, finish):
        built = new_run_dir(staging, "sim")
        write_text(built / "f.txt", "ok")
        run = finish(built)
    assert run == out / "sim-000" and (run / "f.txt").read_text() == "ok"
    assert stat.S_IMODE(run.stat().st_mode) == 0o750  # not mkdtemp's 0700
    assert [p.name for p in out.iterdir()] == ["sim-000"]  # staging removed
    with pytest.raises(RuntimeError), staged_run(tmp_path / "new", "sim"):
        raise RuntimeError
    assert not (tmp_path / "new").exists()  # created here, left empty: removed


# ---------------------------------------------------------------- the summary schema
def _minimal_summary() -> dict:
    entry = {"name": "c_dB", "value": -14.0, "sd": 0.1, "unit": "dB", "free": True}
    rms = {"weighted": 0.1, "weighted_sd": 0.01, "plain": 0.12, "plain_sd": 0.01}
    return {
        "schema_version": SCHEMA_VERSION, "bayesoof_version": "0", "created": "now",
        "source": "f.fits", "object": "", "telescope": {"name": "t"}, "wavelength_m": 0.009,
        "frequency_hz": 3.3e10, "d_z_m": [0.0],
        "maps": [{"name": "m", "d_z_m": 0.0, "n_samples": 3, "sigma": 1.0,
                  "sigma_origin": "file", "amp": entry, "offset": entry, "chi2": 3.0}],
        "order": 1, "orders_fitted": [1], "illumination_model": "parabolic",
        "residual": "likelihood", "forward": "direct",
        "coefficients": [entry | {"n": 1, "l": 1}], "illumination": [entry],
        "pointing": None, "chi2": 3.0, "dof": 2, "reduced_chi2": 1.5, "covariance": "Laplace",
        "phase_rms_rad": rms, "surface_rms_um": rms, "ruze_efficiency": rms,
        "converged": True, "status": "converged", "adequacy": {}, "at_bound": [],
        "per_order": [], "wall_time_s": 1.0,
        "compile_time_s": 0.5, "config": {},
    }


def test_summary_schema_rejects_missing_and_unknown_keys(tmp_path):
    doc = _minimal_summary()
    assert check_summary(doc) is doc
    bad = dict(doc)
    del bad["chi2"]
    with pytest.raises(SummaryError, match=r"'summary' lacks key\(s\) \['chi2'\]"):
        check_summary(bad)
    bad = json.loads(json.dumps(doc))
    bad["maps"][0]["amp"]["typo"] = 1
    with pytest.raises(SummaryError, match=r"'maps\[0\]\.amp' has unknown key\(s\) \['typo'\]"):
        check_summary(bad)
    bad = dict(doc, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(SummaryError, match=f"schema_version {SCHEMA_VERSION + 1}"):
        check_summary(bad)


def test_read_summary_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        read_summary(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no summary.json"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(SummaryError, match="summary.json: not valid JSON"):
        read_summary(tmp_path)
    write_json(tmp_path / "summary.json", _minimal_summary(), overwrite=True)
    assert read_summary(tmp_path)["order"] == 1


def _readme_keys(tag: str) -> set[str]:
    text = (T.REPO_ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {tag} -->(.*?)<!-- /{tag} -->", text, re.S)
    assert block, f"README.md lacks the <!-- {tag} --> table"
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", block.group(1), re.M))


def test_readme_documents_exactly_the_summary_keys():
    keys = documented_keys()
    assert _readme_keys("summary-keys") == keys["summary"]
    assert _readme_keys("posterior-keys") == keys["posterior"]


def test_read_run_tells_a_gravity_run_from_a_fit_run(tmp_path):
    """read_run: a gravity summary (its own format) comes back as written, kind 'gravity'.

    A fit summary is checked against the schema (an unknown key is an error).
    """
    from bayesoof.io import read_run

    grav = tmp_path / "grav"
    grav.mkdir()
    (grav / "summary.json").write_text(json.dumps({"kind": "gravity", "terms": [4]}))
    run = read_run(grav)
    assert run.kind == "gravity" and run.summary["terms"] == [4]
    assert not run.has_posterior
    fit_run = tmp_path / "fit"
    fit_run.mkdir()
    write_summary(fit_run, _minimal_summary())
    assert read_run(fit_run).kind == "fit"
    doc = json.loads((fit_run / "summary.json").read_text()) | {"typo": 1}
    (fit_run / "summary.json").write_text(json.dumps(doc))
    with pytest.raises(SummaryError, match="typo"):
        read_run(fit_run)
