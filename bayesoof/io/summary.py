"""The one ``summary.json`` schema of a run directory: typed, versioned, checked.

``summary.json`` is written by the quick fit (:meth:`FitResult.save`) and gains a
``posterior`` section when a posterior is saved into the same run
(:meth:`PosteriorResult.save`); ``bayesoof info`` and the plots read it back with
:func:`read_summary`.  The keys are the TypedDicts below (the README lists them, and a
test checks that both agree).  Every writer goes through :func:`check_summary`, which
rejects a missing or unknown key at any level, so the schema cannot drift silently.

Units are in the key names or in the ``unit`` field of an entry: ``*_m`` metres,
``*_hz`` hertz, ``*_s`` seconds, ``*_rad`` radians, ``*_um`` micrometres; K in waves.

Schema version 1: the keys the writers have always written (the posterior's aperture
statistics are under ``posterior.aperture``; ``bayesoof info`` used to look for a
``posterior.surface_rms_um`` that no writer wrote).  Bump :data:`SCHEMA_VERSION` with any
change of keys that an older file would fail (a removed or newly required key); a key
added as ``NotRequired`` keeps the version, so earlier run directories still read
(``per_order[].cold_start``).  :func:`read_summary` refuses other versions with a clear message.
"""


import json
import typing
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from bayesoof.io.atomic import write_json

__all__ = [
    "SCHEMA_VERSION",
    "Entry",
    "IntervalEntry",
    "MapEntry",
    "OrderEntry",
    "PosteriorSection",
    "RmsEntry",
    "Summary",
    "SummaryError",
    "add_posterior",
    "check_summary",
    "documented_keys",
    "read_summary",
    "write_summary",
]

SCHEMA_VERSION = 1
SUMMARY_NAME = "summary.json"


class SummaryError(ValueError):
    """A summary.json that is missing, unreadable or not of this schema (names the file)."""


class Entry(TypedDict):
    """One parameter of the quick fit: MAP value and Laplace sd in ``unit``."""

    name: str
    value: float
    sd: float
    unit: str
    free: bool
    n: NotRequired[int]  # Zernike coefficients only: radial order
    l: NotRequired[int]  # noqa: E741  Zernike coefficients only: azimuthal order


class MapEntry(TypedDict):
    """One beam map: offset d_z (m), samples, noise σ (data units), amp and offset, χ²."""

    name: str
    d_z_m: float
    n_samples: int
    sigma: float
    sigma_origin: str
    amp: Entry
    offset: Entry
    chi2: float
    gain_drift: NotRequired[Entry]  # relative gain drift g along the scan time t (drift nuisance)
    baseline_drift: NotRequired[Entry]  # baseline drift c (data units) along t
    scan_time: NotRequired[str]  # where t comes from


class RmsEntry(TypedDict):
    """An aperture statistic, illumination-weighted (the definition) and plain, with sd."""

    weighted: float
    weighted_sd: float
    plain: float
    plain_sd: float
    approximation: NotRequired[str]


class OrderEntry(TypedDict):
    """One order of the quick fit."""

    order: int
    chi2: float
    reduced_chi2: float
    converged: bool
    message: str
    iterations: int
    evaluations: int
    wall_time_s: float
    n_free: int
    start_chi2: list[float]
    cold_start: NotRequired[str]  # "", "won", "lost": see fit.cold_start_above (not in older files)


class IntervalEntry(TypedDict):
    """Posterior mean, sd and 94% highest-density interval of a scalar, in ``unit``."""

    mean: float
    sd: float
    hdi_3_percent: float
    hdi_97_percent: float
    unit: str


class PosteriorSection(TypedDict):
    """What ``bayesoof sample`` adds: sampler, settings, verdict, table and products."""

    sampler: str
    settings: dict[str, Any]
    converged: bool
    problems: list[str]
    interrupted: bool
    diagnostics: dict[str, Any]
    modes: dict[str, Any]
    timing: dict[str, Any]
    laplace: NotRequired[dict[str, Any]]
    parameters: NotRequired[dict[str, dict[str, Any]]]
    aperture: NotRequired[dict[str, IntervalEntry]]
    standardized_residuals: NotRequired[dict[str, dict[str, float]]]
    adequacy: NotRequired[dict[str, Any]]
    misfit_adjustment: NotRequired[dict[str, Any]]
    held_marginalised: NotRequired[dict[str, Any]]


class Summary(TypedDict):
    """The whole ``summary.json``."""

    schema_version: int
    bayesoof_version: str
    created: str
    source: str
    object: str
    telescope: dict[str, Any]
    wavelength_m: float
    frequency_hz: float
    d_z_m: list[float]
    maps: list[MapEntry]
    order: int
    orders_fitted: list[int]
    illumination_model: str
    residual: str
    forward: str
    coefficients: list[Entry]
    illumination: list[Entry]
    pointing: list[Entry] | None
    chi2: float
    dof: int
    reduced_chi2: float
    covariance: str
    phase_rms_rad: RmsEntry
    surface_rms_um: RmsEntry
    ruze_efficiency: RmsEntry
    converged: bool
    status: str
    adequacy: dict[str, Any]
    uncertainty: NotRequired[dict[str, Any] | None]  # likelihood behind the covariance
    noise_only_sd: NotRequired[dict[str, float] | None]  # sd before a misfit model
    at_bound: list[str]
    per_order: list[OrderEntry]
    wall_time_s: float
    compile_time_s: float
    config: dict[str, Any]
    posterior: NotRequired[PosteriorSection]
    selected_order: NotRequired[int]  # --order auto (bayesoof.campaign.order)
    order_selection: NotRequired[dict[str, Any]]  # its criterion per order and checks


# JSON has no "%" in a Python identifier: the two interval keys as written
_RENAMED = {"hdi_3_percent": "hdi_3%", "hdi_97_percent": "hdi_97%"}


def _keys(td) -> tuple[set[str], set[str]]:
    req = {_RENAMED.get(k, k) for k in td.__required_keys__}
    opt = {_RENAMED.get(k, k) for k in td.__optional_keys__}
    return req, opt


def _typed_dict(tp):
    """The TypedDict inside ``tp`` (itself, ``X | None``, ``list[X]``, ``dict[str, X]``)."""
    if isinstance(tp, type) and typing.is_typeddict(tp):
        return tp, "one"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list and args and typing.is_typeddict(args[0]):
        return args[0], "list"
    if origin is dict and len(args) == 2 and typing.is_typeddict(args[1]):
        return args[1], "dict"
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _typed_dict(inner[0])
    return None, None


def _check(doc, td, where: str, source: str) -> None:
    if not isinstance(doc, dict):
        raise SummaryError(f"{source}: '{where or 'summary'}' must be an object, got {doc!r:.60}")
    req, opt = _keys(td)
    missing = sorted(req - set(doc))
    unknown = sorted(set(doc) - req - opt)
    if missing:
        raise SummaryError(f"{source}: '{where or 'summary'}' lacks key(s) {missing}")
    if unknown:
        raise SummaryError(f"{source}: '{where or 'summary'}' has unknown key(s) {unknown} "
                           f"(schema {SCHEMA_VERSION}: {sorted(req | opt)})")
    hints = typing.get_type_hints(td)
    for key, tp in hints.items():
        key = _RENAMED.get(key, key)
        if key not in doc or doc[key] is None:
            continue
        inner, how = _typed_dict(tp)
        path = f"{where}.{key}" if where else key
        if how == "one":
            _check(doc[key], inner, path, source)
        elif how == "list":
            for i, item in enumerate(doc[key]):
                _check(item, inner, f"{path}[{i}]", source)
        elif how == "dict":
            for k, item in doc[key].items():
                _check(item, inner, f"{path}.{k}", source)


def check_summary(doc: dict, source: str = "summary") -> dict:
    """Return ``doc`` when it follows :class:`Summary`; SummaryError naming the key if not."""
    _check(doc, Summary, "", source)
    if doc["schema_version"] != SCHEMA_VERSION:
        raise SummaryError(f"{source}: schema_version {doc['schema_version']!r}; this bayesoof "
                           f"reads version {SCHEMA_VERSION}")
    return doc


def documented_keys() -> dict[str, set[str]]:
    """Keys of the summary and of its posterior section (as the README lists them)."""
    top = set().union(*_keys(Summary))
    post = set().union(*_keys(PosteriorSection))
    return {"summary": top, "posterior": post}


def write_summary(run_dir, doc: dict, *, overwrite: bool = False) -> Path:
    """Check ``doc`` and write it atomically as ``run_dir/summary.json``."""
    path = Path(run_dir) / SUMMARY_NAME
    check_summary(doc, str(path))
    return write_json(path, doc, overwrite=overwrite)


def read_summary(run_dir) -> Summary:
    """Read and check ``run_dir/summary.json``.

    Raises
    ------
    FileNotFoundError
        ``run_dir`` or its summary.json does not exist.
    SummaryError
        Not valid JSON, or not of this schema (the message names the file and the key).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    path = run / SUMMARY_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{run}: not a bayesoof run directory (no {SUMMARY_NAME})")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SummaryError(f"{path}: not valid JSON ({err})") from None
    return check_summary(doc, str(path))


def add_posterior(run_dir, section: dict) -> Path:
    """Add (or replace) the ``posterior`` section of ``run_dir/summary.json`` atomically."""
    doc = dict(read_summary(run_dir))
    doc["posterior"] = section
    return write_summary(run_dir, doc, overwrite=True)
