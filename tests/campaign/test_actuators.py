"""Actuator geometry, displacement propagation and look-up-table formats."""

import warnings

import numpy as np
import pytest

from bayesoof.campaign import actuators as A
from bayesoof.physics import zernike
from bayesoof.physics.actuators import actuators_from_dict
from bayesoof.physics.telescope import TelescopeError, get_telescope

LAM = 0.009  # m


def _eff():
    return get_telescope("effelsberg").actuators


def test_effelsberg_preset_has_96_actuators_on_four_rings():
    act = _eff()
    assert act.n == 96
    r = np.hypot(act.x, act.y)
    assert sorted(set(np.round(r, 6))) == [1.21, 1.88, 2.6, 3.25]
    ang = np.rad2deg(np.arctan2(act.y[:24], act.x[:24])) % 360
    np.testing.assert_allclose(ang, 7.5 + 15 * np.arange(24), atol=1e-9)
    assert act.limit == 0.005 and act.sign == -1.0
    assert list(act.lookup_elevations) == [7, 10, 20, 30, 32, 40, 50, 60, 70, 80, 90]


def test_bad_actuator_section_is_one_clear_error():
    with pytest.raises(TelescopeError, match=r"\[actuators\] unknown key"):
        actuators_from_dict({"rings": [1.0], "per_ring": 4, "surface_radius": 1.0, "bogus": 1})
    with pytest.raises(TelescopeError, match="outside surface_radius"):
        actuators_from_dict({"x": [2.0], "y": [0.0], "surface_radius": 1.0})
    with pytest.raises(TelescopeError, match="needs the actuator positions"):
        actuators_from_dict({"surface_radius": 1.0})


def test_displacement_is_minus_phase_lambda_over_4pi_at_the_rotated_point():
    """Independent reference: the phase map of products.maps at the primary point the
    actuator maps to (scale 50/3.25, rotated by -90 deg), times sign λ/(4π)."""
    from bayesoof.products.maps import phase_map

    act = _eff()
    nl = zernike.nl_list(3)
    K = np.zeros(len(nl))
    K[zernike.nl_to_j(3, 1)] = 0.05  # R_3^1 cos θ: odd in θ, so the rotation shows
    K[zernike.nl_to_j(2, 0)] = 0.03
    d = A.displacement_matrix(act, nl, LAM) @ K
    # primary point of each actuator: (x, y) -> R/rs * rot(-90)(x, y) = (y, -x) * R/rs
    R = 50.0
    px, py = np.array(act.y) * R / 3.25, -np.array(act.x) * R / 3.25
    rho, th = np.hypot(px, py) / R, np.arctan2(py, px)
    phase = 2 * np.pi * (zernike.zernike_basis(3, rho, th) @ K)
    np.testing.assert_allclose(d, -phase * LAM / (4 * np.pi) * 1e6, rtol=1e-12, atol=1e-9)
    # and against the gridded phase map at an interior actuator (grid step tolerance:
    # nearest pixel of a 2001-pixel map, |∇φ| · 0.05 m ≲ 1e-3 rad)
    pm = phase_map(K, None, R, LAM, 2001)
    k = 80  # inner ring
    ix, iy = np.argmin(abs(pm.x - px[k])), np.argmin(abs(pm.y - py[k]))
    assert d[k] == pytest.approx(-pm.phase[iy, ix] * LAM / (4 * np.pi) * 1e6, abs=2.0)


def test_piston_and_tilt_give_no_command():
    nl = zernike.nl_list(2)
    M = A.displacement_matrix(_eff(), nl, LAM)
    assert np.all(M[:, :3] == 0.0)
    assert np.any(A.displacement_matrix(_eff(), nl, LAM, include_tilt=True)[:, 1:3] != 0)


def test_sd_propagation_matches_monte_carlo():
    rng = np.random.default_rng(0)
    nl = zernike.nl_list(3)
    K = rng.normal(0, 0.01, len(nl))
    L = rng.normal(0, 0.002, (len(nl), len(nl)))
    cov = L @ L.T
    cmd = A.command_from_gaussian(_eff(), K, cov, nl, LAM, 45.0)
    draws = rng.multivariate_normal(K, cov, 20000)[:, None, :]
    mc = A.command_from_draws(_eff(), draws, nl, LAM, [45.0])
    # 20000 draws: relative Monte-Carlo error of an sd is 1/sqrt(2·20000) = 0.5 %; 3 %
    np.testing.assert_allclose(mc.sd, cmd.sd, rtol=0.03)
    np.testing.assert_allclose(mc.displacement, cmd.displacement, atol=0.05 * cmd.sd.max())


def test_limit_is_enforced_with_a_warning():
    nl = zernike.nl_list(2)
    K = np.zeros(len(nl))
    K[zernike.nl_to_j(2, 0)] = 2.0  # 2 waves of defocus at 9 mm: ~9 mm at the rim
    with pytest.warns(A.ActuatorLimitWarning, match=r"exceed the limit of ±5 mm"):
        cmd = A.command_from_gaussian(_eff(), K, np.zeros((6, 6)), nl, LAM)
    assert np.max(np.abs(cmd.displacement)) == pytest.approx(5000.0)
    assert cmd.clipped.any() and np.max(np.abs(cmd.raw)) > 5000.0


def test_effelsberg_lookup_layout():
    nl = zernike.nl_list(2)
    K = np.zeros(len(nl))
    K[4] = 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cmd = A.command_from_gaussian(_eff(), K, np.eye(6) * 1e-6, nl, LAM)
    lines = A.effelsberg_lookup_text(cmd).splitlines()
    assert len(lines) == 97 and lines[-1] == "**ENDE**"
    for k, line in enumerate(lines[:-1]):
        parts = line.split()
        assert parts[:3] == ["NR", str(k + 1), "ffff"] and len(parts) == 14
        assert all(p.lstrip("-").isdigit() for p in parts[3:])
    # defocus: one value per ring, same at every elevation of a single result
    first = lines[0].split()[3:]
    assert len(set(first)) == 1
    assert int(first[0]) == round(float(cmd.displacement[0, 0]))


def test_gbt_rows_follow_the_converter():
    nl = zernike.nl_list(3)
    rng = np.random.default_rng(2)
    K = rng.normal(0, 0.02, len(nl))
    cov = np.diag(rng.uniform(1e-6, 4e-6, len(nl)))
    rows = A.gbt_rows_gaussian(K, cov, nl, LAM)
    g = zernike.osa_to_gbt(K, LAM)
    assert [r["k"] for r in rows] == list(range(1, len(nl) + 1))
    np.testing.assert_allclose([r["value_um"] for r in rows], g)
    # sd: the GBT term k(n, l) is the OSA term (n, -l) times ±λ/2
    for r in rows:
        j = zernike.nl_to_j(r["n"], -r["l"])
        assert r["sd_um"] == pytest.approx(np.sqrt(cov[j, j]) * LAM / 2 * 1e6)
    assert "GBT" in A.gbt_text(rows, "test")
