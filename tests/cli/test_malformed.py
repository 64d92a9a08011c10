"""A corpus of malformed beam-map files, each run through the command line.

Every bad file is built here with astropy (independently of the readers under test) from
a tiny valid set: three 5 x 5 maps, Effelsberg at 9 mm.  Each is given to ``bayesoof
info``, ``bayesoof fit`` and ``bayesoof convert`` (in-process, file descriptors captured,
so that text written by native code is seen too).  For every run:

* exit status 1 (or, for the documented warnings, 0 with one ``bayesoof: warning:`` line);
* exactly one line on stderr, naming the file and the field, no traceback;
* nothing left in the output directory (no run, no staging folder, no temporary file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from bayesoof import testing as T
from bayesoof.cli import main

C = 299_792_458.0
WAVEL = 0.009  # m
STEP = 2e-4  # rad, about 2 beam widths lambda/(2R) of Effelsberg at 9 mm


def _lattice(n: int = 5):
    g = (np.arange(n) - n // 2) * STEP
    uu, vv = np.meshgrid(g, g)
    return uu.ravel(), vv.ravel()


def _beam(dz: float) -> np.ndarray:
    u, v = _lattice()
    width = (1.0 + 30 * abs(dz)) * STEP
    return 0.5 + 100.0 * np.exp(-(u**2 + v**2) / (2 * width**2))


def _primary(**changes) -> dict:
    cards = {"FREQ": C / WAVEL, "WAVEL": WAVEL, "MEANEL": 45.0, "OBJECT": "test",
             "TELESC": "effelsberg"}
    cards.update(changes)
    return {k: v for k, v in cards.items() if v is not None}


def _columns(names, dz, **override):
    """Float64 columns (u, v, beam[, sigma]) of one map, with ``override`` by name."""
    u, v = _lattice()
    arrays = dict(zip(names, (u, v, _beam(dz), np.full(u.size, 0.2)), strict=False))
    arrays.update(override)
    return arrays


def _write(path: Path, primary: dict, tables: list) -> Path:
    """``tables``: (EXTNAME, header cards, {column: array or (TFORM, array)}); float64."""
    return T.write_raw_fits(path, primary, tables, float_format="D")


PYOOF = (("MINUS OOF", -0.022), ("ZERO OOF", 0.0), ("PLUS OOF", 0.022))


def pyoof(path, primary=None, drop=(), extra=(), dz=None, cols=None, cards=None):
    """A pyoof file; ``cols`` / ``cards``: {table: changes}; ``drop``: table names left out."""
    tables = []
    for (name, d), dz_k in zip(PYOOF, dz or [d for _, d in PYOOF], strict=True):
        if name in drop:
            continue
        c = {"DZ": dz_k} if dz_k is not None else {}
        c.update((cards or {}).get(name, {}))
        tables.append((name, c, _columns(("U", "V", "BEAM"), d, **(cols or {}).get(name, {}))))
    tables += list(extra)
    return _write(path, _primary() if primary is None else primary, tables)


def nikolic(path, dz=(-0.022, 0.0, 0.022), primary=None, cols=None, drop_cols=None):
    """A Nikolic file (DX, DY, FNU, UFNU); ``cols`` / ``drop_cols``: {map index: ...}."""
    tables = []
    for k, d in enumerate(dz):
        c = _columns(("DX", "DY", "FNU", "UFNU"), d, **(cols or {}).get(k, {}))
        for name in (drop_cols or {}).get(k, ()):
            del c[name]
        tables.append((f"OOF{k}", {"DZ": d}, c))
    return _write(path, _primary() if primary is None else primary, tables)


def _valid_bytes(tmp: Path) -> bytes:
    return pyoof(tmp / "_valid.fits").read_bytes()


def _corpus(root: Path) -> list[tuple[str, Path, tuple[str, ...], tuple[str, ...], str]]:
    """(case, path, commands, words expected in the message, 'error' or 'warning')."""
    src = root / "src"
    src.mkdir()
    good = _valid_bytes(root)
    n = _beam(0.0).size
    u, _ = _lattice()
    cases: list = []
    every = ("info", "fit", "convert")

    def add(case, path, words, commands=every, kind="error"):
        cases.append((case, path, commands, tuple(words), kind))

    def raw(name, data: bytes):
        p = src / name
        p.write_bytes(data)
        return p

    # ---- not FITS at all, or cut short
    add("empty file", raw("empty.fits", b""), ["not a valid FITS file"])
    add("text file", raw("text.fits", b"u v beam\n0 0 1\n"), ["not a valid FITS file"])
    add("png", raw("png.fits", b"\x89PNG\r\n\x1a\n" + bytes(2000)), ["not a valid FITS file"])
    add("random bytes", raw("noise.fits", np.random.default_rng(0).bytes(5760)),
        ["not a valid FITS file"])
    add("truncated in the header", raw("cut_header.fits", good[:1000]),
        ["not a valid FITS file"])
    add("truncated in the data", raw("cut_data.fits", good[: len(good) - 2000]),
        ["not a valid FITS file"])
    add("truncated to one block", raw("cut_block.fits", good[:2880]), ["format"])
    # ---- structure
    add("primary only", _write(src / "primary_only.fits", _primary(), []),
        ["cannot detect the beam-map format"])
    img = src / "image.fits"
    fits.HDUList([fits.PrimaryHDU(np.ones((8, 8))), fits.ImageHDU(np.ones((4, 4)))]).writeto(img)
    add("images, no tables", img, ["cannot detect the beam-map format"])
    add("pyoof table missing", pyoof(src / "no_plus.fits", drop=("PLUS OOF",)),
        ["missing table(s) 'PLUS OOF'"])
    dup = ("ZERO OOF", {"DZ": 0.0}, _columns(("U", "V", "BEAM"), 0.0))
    add("pyoof table twice", pyoof(src / "two_zero.fits", extra=[dup]),
        ["two tables named 'ZERO OOF'"])
    add("pyoof column missing",
        _write(src / "no_beam.fits", _primary(),
               [(nm, {"DZ": d}, {k: v for k, v in _columns(("U", "V", "BEAM"), d).items()
                                 if not (nm == "ZERO OOF" and k == "BEAM")})
                for nm, d in PYOOF]),
        ["table 'ZERO OOF'", "missing column(s) BEAM"])
    add("nikolic column missing", nikolic(src / "no_dy.fits", drop_cols={1: ("DY",)}),
        ["table 'OOF1'", "missing column(s) DY"])
    add("no usable columns",
        _write(src / "columns.fits", _primary(),
               [("OOF0", {"DZ": 0.0}, {"X": u, "Y": u, "Z": _beam(0.0)})]),
        ["cannot detect the beam-map format"])
    # ---- primary header keywords
    add("no wavelength", pyoof(src / "no_wavel.fits", primary=_primary(FREQ=None, WAVEL=None)),
        ["primary header", "neither a wavelength keyword"])
    add("negative wavelength",
        pyoof(src / "wavel_neg.fits", primary=_primary(FREQ=None, WAVEL=-0.009)),
        ["WAVEL", "positive wavelength"])
    add("zero wavelength", pyoof(src / "wavel_0.fits", primary=_primary(FREQ=None, WAVEL=0.0)),
        ["WAVEL", "positive wavelength"])
    add("negative frequency",
        pyoof(src / "freq_neg.fits", primary=_primary(FREQ=-3.3e10, WAVEL=None)),
        ["FREQ", "positive frequency"])
    add("frequency as text",
        pyoof(src / "freq_text.fits", primary=_primary(FREQ="33 GHz", WAVEL=None)),
        ["keyword FREQ must be a number"])
    add("frequency and wavelength disagree",
        pyoof(src / "freq_wavel.fits", primary=_primary(WAVEL=0.0045)),
        ["FREQ", "WAVEL", "disagree"])
    add("elevation out of range", pyoof(src / "meanel.fits", primary=_primary(MEANEL=400.0)),
        ["MEANEL", "0 to 90 deg"])
    add("elevation as text", pyoof(src / "meanel_text.fits", primary=_primary(MEANEL="high")),
        ["keyword MEANEL must be a number"])
    # ---- d_z
    add("d_z missing", pyoof(src / "dz_missing.fits", dz=[-0.022, None, 0.022]),
        ["table 'ZERO OOF'", "DZ", "missing"])
    add("d_z as text", pyoof(src / "dz_text.fits", cards={"ZERO OOF": {"DZ": "zero"}}),
        ["keyword DZ must be a number"])
    add("d_z twice", nikolic(src / "dz_twice.fits", dz=(0.0, 0.022, 0.022)),
        ["same d_z = 0.022 m"])
    add("d_z twice (pyoof)", pyoof(src / "dz_twice_pyoof.fits", dz=[-0.022, 0.0, -0.022]),
        ["same d_z = -0.022 m"])
    add("d_z a boolean", pyoof(src / "dz_bool.fits", cards={"PLUS OOF": {"DZ": True}}),
        ["keyword DZ must be a number"])
    add("no in-focus map", nikolic(src / "dz_no_focus.fits", dz=(-0.022, 0.022)),
        ["no in-focus map"])
    add("d_z in mm written as m", nikolic(src / "dz_mm.fits", dz=(-22.0, 0.0, 22.0)),
        ["d_z = -22.0 m", "sub-reflector offset"])
    # ---- sample values
    bad = _beam(0.0)
    bad[3] = np.nan
    add("NaN in the beam (a dead sample)",
        pyoof(src / "beam_nan.fits", cols={"ZERO OOF": {"BEAM": bad}}),
        ["masked dead samples", "map ZERO OOF: 1 of 25 (1 NaN/inf)"], commands=("info",),
        kind="warning")
    bad_all = np.full(n, np.nan)
    add("NaN everywhere in a map", nikolic(src / "fnu_all_nan.fits", cols={1: {"FNU": bad_all}}),
        ["map OOF1", "no samples"])
    vnan = u.copy()
    vnan[4] = np.nan
    add("NaN in v", nikolic(src / "dy_nan.fits", cols={0: {"DY": vnan}}),
        ["table 'OOF0'", "non-finite", "DY"])
    uinf = u.copy()
    uinf[0] = np.inf
    add("inf in u", pyoof(src / "u_inf.fits", cols={"PLUS OOF": {"U": uinf}}),
        ["table 'PLUS OOF'", "non-finite", "U"])
    add("constant map", pyoof(src / "constant.fits", cols={"ZERO OOF": {"BEAM": np.full(n, 7.)}}),
        ["map ZERO OOF", "'beam' is constant", "no signal"])
    add("all-zero map", nikolic(src / "zeros.fits", cols={1: {"FNU": np.zeros(n)}}),
        ["map OOF1", "'beam' is constant", "no signal"])
    empty = {c: np.zeros(0) for c in ("U", "V", "BEAM")}
    add("empty table", pyoof(src / "empty_table.fits", cols={"MINUS OOF": empty}),
        ["map MINUS OOF", "no samples"])
    add("coordinates in arcsec", pyoof(src / "arcsec.fits", cols={
        nm: {"U": u * 206264.8} for nm, _ in PYOOF}), ["'u'", "direction cosines"])
    add("all samples at one u", pyoof(src / "one_u.fits", cols={"ZERO OOF": {"U": np.zeros(n)}}),
        ["map ZERO OOF", "same u"])
    add("map 0.9 rad wide", pyoof(src / "wide.fits", cols={
        nm: {"U": u / u.max() * 0.9} for nm, _ in PYOOF}), ["beam widths", "coordinates in rad"],
        commands=("fit",))
    add("beam column as text", pyoof(src / "beam_text.fits", cols={
        "ZERO OOF": {"BEAM": ("8A", np.array(["x"] * n))}}), ["column BEAM must be numeric"])
    add("vector column", pyoof(src / "vector.fits", cols={
        "ZERO OOF": {"BEAM": ("2D", np.ones((n, 2)))}}), ["column BEAM must hold one value"])
    # ---- noise column
    sig = np.full(n, 0.2)
    sig[2] = -0.1
    add("negative noise", nikolic(src / "ufnu_neg.fits", cols={0: {"UFNU": sig}}),
        ["table 'OOF0'", "UFNU", "> 0"])
    sig = np.full(n, 0.2)
    sig[5] = np.nan
    add("NaN noise", nikolic(src / "ufnu_nan.fits", cols={2: {"UFNU": sig}}),
        ["table 'OOF2'", "non-finite", "UFNU"])
    add("noise as text", nikolic(src / "ufnu_text.fits", cols={
        1: {"UFNU": ("4A", np.array(["0.2"] * n))}}), ["column UFNU must be numeric"])
    # ---- not files
    folder = src / "folder.fits"
    folder.mkdir()
    add("a directory (fit, convert)", folder, ["is a directory"], commands=("fit", "convert"))
    add("a directory (info)", folder, ["not a bayesoof run directory"], commands=("info",))
    add("missing file", src / "missing.fits", ["no such file"])
    # ---- documented warnings: usable, exit 0, one warning line
    add("pyoof d_z signs swapped",
        pyoof(src / "dz_sign.fits", dz=[0.022, 0.0, -0.022]),
        ["'MINUS OOF' has DZ = 0.022 m; expected DZ < 0"], commands=("info",), kind="warning")
    add("noise zero everywhere", nikolic(src / "ufnu_zero.fits", cols={
        k: {"UFNU": np.zeros(n)} for k in range(3)}),
        ["UFNU is zero everywhere; treated as not given"], commands=("info",), kind="warning")
    add("frequency and wavelength 0.5 % apart",
        pyoof(src / "freq_wavel_close.fits", primary=_primary(WAVEL=WAVEL * 1.005)),
        ["disagree", "using the wavelength"], commands=("info",), kind="warning")
    return cases


def _argv(command: str, path: Path, out: Path) -> list[str]:
    if command == "info":
        return ["info", str(path)]
    if command == "fit":
        return ["fit", str(path), "--order", "1", "--telescope", "effelsberg", "--out",
                str(out / "runs"), "--quiet"]
    return ["convert", str(path), str(out / "converted.fits"), "--to", "nikolic"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed")
    return root, _corpus(root)


def test_corpus_is_large_and_distinct(corpus):
    root, cases = corpus
    bad_files = {p for _, p, _, _, kind in cases if kind == "error"}
    assert len(bad_files) >= 35, len(bad_files)
    assert len({c[0] for c in cases}) == len(cases)
    contents = [p.read_bytes() for p in bad_files if p.is_file()]
    assert len(set(contents)) == len(contents), "two bad files have the same bytes"


def test_every_bad_file_gives_one_line_and_leaves_nothing(corpus, capfd, tmp_path):
    root, cases = corpus
    before = sorted(p.name for p in (root / "src").iterdir())
    failures = []
    for case, path, commands, words, kind in cases:
        for command in commands:
            out = tmp_path / f"{path.stem}-{command}"
            out.mkdir()
            code = main(_argv(command, path, out))
            stdout, stderr = capfd.readouterr()
            lines = stderr.splitlines()
            why = []
            if kind == "error" and code != 1:
                why.append(f"exit {code}")
            if kind == "warning" and code != 0:
                why.append(f"exit {code} for a warning")
            if len(lines) != 1:
                why.append(f"{len(lines)} lines on stderr")
            prefix = "bayesoof: error: " if kind == "error" else "bayesoof: warning: "
            if not stderr.startswith(prefix):
                why.append("no prefix")
            if path.name not in stderr:
                why.append("file not named")
            why += [f"no {w!r}" for w in words if w not in stderr]
            if "Traceback" in stderr + stdout or "** On entry" in stderr + stdout:
                why.append("traceback or native text")
            left = sorted(p.name for p in out.rglob("*"))
            if kind == "error" and left:
                why.append(f"left {left}")
            if why:
                failures.append(f"{case} [{command}]: {'; '.join(why)}: {stderr!r}")
    assert not failures, "\n".join(failures)
    # the inputs are untouched and nothing was written beside them
    assert sorted(p.name for p in (root / "src").iterdir()) == before
