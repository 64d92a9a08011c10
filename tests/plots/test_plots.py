"""Every plotting function of bayesoof.plots, under Agg, checked for what it must draw."""
# ruff: noqa: E741  -- ``l`` is the azimuthal Zernike index

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytensor
import pytest
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from bayesoof import plots
from bayesoof.inference.likelihood import predict
from bayesoof.physics import zernike
from bayesoof.physics.forward import ForwardModel
from bayesoof.products.maps import phase_map
from bayesoof.simulate import DEFAULT_ILLUMINATION, random_coefficients, simulate

ORDER = 2
WAVELENGTH = 0.009


@pytest.fixture(scope="module")
def case():
    """Small simulated data set (15 x 15 lattice) and its noise-free model."""
    K = random_coefficients(ORDER, scale=0.05, seed=3)
    data = simulate("effelsberg", K, WAVELENGTH, n_grid=15, extent=6.0, snr=100, seed=1,
                    amp=10.0, offset=0.5)
    fm = ForwardModel(data, "effelsberg", ORDER)
    model = pytensor.function(
        [], predict(fm, K, DEFAULT_ILLUMINATION, np.full(3, 10.0), np.full(3, 0.5))
    )()
    return data, model, K


def _main_axes(fig):
    """Axes that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _images(ax):
    return [a for a in ax.get_children() if isinstance(a, AxesImage)]


def _data(image):
    """Pixel values of an image as a plain array (masked pixels -> NaN)."""
    return np.ma.filled(np.ma.asarray(image.get_array(), dtype=float), np.nan)


def test_beam_maps_linear_lattice(case):
    data, model, _ = case
    fig = plots.plot_beam_maps(data, model)
    assert isinstance(fig, Figure)
    axes = _main_axes(fig)
    assert len(axes) == 3 * data.n_maps  # observed, model, residual per map
    assert len(fig.axes) == 2 * len(axes)  # one colour bar each
    for i, m in enumerate(data.maps):
        obs, mod, res = axes[3 * i: 3 * i + 3]
        assert "observed" in obs.get_title() and m.name in obs.get_title()
        assert mod.get_title() == "model"
        assert res.get_title().startswith("residual")
        for ax in (obs, mod, res):
            assert len(_images(ax)) == 1, "lattice maps are drawn with imshow"
            assert "arcmin" in ax.get_xlabel()
        img = _data(_images(obs)[0])
        assert img.shape == (15, 15)
        g = m.grid()
        np.testing.assert_allclose(img[g.iv, g.iu], m.beam)
        # residual panel is (data - model)/sigma
        r = _data(_images(res)[0])
        want = (m.beam - model[i * m.size:(i + 1) * m.size]) / m.sigma
        np.testing.assert_allclose(r[g.iv, g.iu], want)
        # the noise is unit-variance after standardisation: rms in the title is ~1
        rms = float(res.get_title().split("rms ")[1].rstrip(")"))
        assert 0.8 < rms < 1.2


def test_beam_maps_db_and_observed_only(case):
    data, model, _ = case
    fig = plots.plot_beam_maps(data, model, scale="db", offsets=0.5)
    axes = _main_axes(fig)
    for i in range(data.n_maps):
        for ax in axes[3 * i: 3 * i + 2]:
            a = _data(_images(ax)[0])
            assert np.nanmin(a) >= -40.0 - 1e-9  # floor of the dB scale
            assert _images(ax)[0].get_clim() == (-40.0, 0.0)
        model_db = _data(_images(axes[3 * i + 1])[0])
        assert np.isclose(np.nanmax(model_db), 0.0)  # normalised to the model peak
    only = plots.plot_beam_maps(data)
    assert len(_main_axes(only)) == data.n_maps
    with pytest.raises(ValueError, match="scale"):
        plots.plot_beam_maps(data, scale="log")
    with pytest.raises(ValueError, match="model must hold"):
        plots.plot_beam_maps(data, model[:-1])


def test_beam_maps_scattered():
    K = random_coefficients(ORDER, seed=4)
    data = simulate("effelsberg", K, WAVELENGTH, n_grid=12, extent=6.0, scatter=True, seed=2,
                    method="direct")
    assert all(m.grid() is None for m in data.maps)
    fig = plots.plot_beam_maps(data, np.concatenate([m.beam for m in data.maps]) * 0.9,
                               angle_unit="arcsec")
    for ax in _main_axes(fig):
        assert not _images(ax), "scattered samples must not be drawn as an image"
        assert ax.collections, "scattered samples are drawn with tricontourf"
        assert "arcsec" in ax.get_xlabel()


def test_phase_map_units_and_outline():
    K = random_coefficients(3, seed=5)
    fig = plots.plot_phase_map(K, "effelsberg", WAVELENGTH, n=81)
    axes = _main_axes(fig)
    assert len(axes) == 2
    phase_ax, surf_ax = axes
    phase = _data(_images(phase_ax)[0])
    surf = _data(_images(surf_ax)[0])
    # on-axis conversion surface = phase lambda / (4 pi), in microns
    np.testing.assert_allclose(surf, phase * WAVELENGTH / (4 * np.pi) * 1e6)
    # the phase is the Zernike sum (piston and tilts removed) at the pixel centres
    pm = phase_map(K, None, 50.0, WAVELENGTH, n=81)
    x, ref = pm.x, pm.phase
    np.testing.assert_allclose(phase, ref)
    Kt = K.copy()
    Kt[:3] = 0
    iy, ix = 40, 60
    rho = np.hypot(x[ix], x[iy]) / 50.0
    th = np.arctan2(x[iy], x[ix])
    want = 2 * np.pi * sum(k * zernike.zernike(n, l, rho, th)
                           for k, (n, l) in zip(Kt, zernike.nl_list(3), strict=True))
    assert np.isclose(phase[iy, ix], want)
    assert np.isnan(phase[0, 0])  # outside the dish
    for ax in axes:
        assert len(_images(ax)) == 2  # map + shaded blockage
        assert ax.collections, "blockage contour"
        assert any(len(line.get_xdata()) > 100 for line in ax.get_lines()), "dish rim"
        assert ax.get_xlabel() == "x (m)"
    cbar_labels = [a.get_ylabel() for a in fig.axes if a.get_label() == "<colorbar>"]
    assert "surface error (µm)" in cbar_labels and "phase error (rad)" in cbar_labels
    # without a wavelength the surface panel is dropped
    assert len(_main_axes(plots.plot_phase_map(K, "effelsberg", n=41))) == 1


def test_phase_uncertainty_mean_sd_width():
    rng = np.random.default_rng(0)
    K = random_coefficients(2, seed=6)
    draws = K + 0.01 * rng.normal(size=(400, K.size))
    fig = plots.plot_phase_uncertainty(draws, "effelsberg", WAVELENGTH, unit="um", n=41)
    axes = _main_axes(fig)
    assert [a.get_title().split(" ")[:2] for a in axes] == [
        ["posterior", "mean"], ["posterior", "sd"], ["94%", "interval"]]
    mean, sd, width = (_data(_images(a)[0]) for a in axes)
    inside = np.isfinite(mean)
    assert np.all(sd[inside] >= 0) and np.all(width[inside] >= 0)
    # for Gaussian draws the 94% width is about 2 x 1.88 sd
    ratio = np.nanmedian(width / np.where(sd > 0, sd, np.nan))
    assert 3.3 < ratio < 4.2
    # identical draws: zero spread
    fig0 = plots.plot_phase_uncertainty(np.tile(K, (5, 1)), "effelsberg", WAVELENGTH, n=31)
    sd0 = _data(_images(_main_axes(fig0)[1])[0])
    assert np.nanmax(np.abs(sd0)) < 1e-9
    with pytest.raises(ValueError, match="wavelength"):
        plots.plot_phase_uncertainty(draws, "effelsberg", None, unit="um")


def test_coefficients_labels_and_errorbars():
    K = random_coefficients(3, seed=7)
    fig = plots.plot_coefficients(K, err=0.01 * np.ones(K.size), truth=K)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [f"({n},{l})" for n, l in zernike.nl_list(3)]
    assert len(ax.containers) == 1  # one errorbar series
    fig2 = plots.plot_coefficients(
        {"MAP": (K, 0.01 * np.ones(K.size)), "NUTS": (K, np.vstack([K * 0 + 0.01] * 2))},
        skip=3, unit="um", wavelength=WAVELENGTH)
    (ax2,) = fig2.axes
    assert len(ax2.containers) == 2
    assert len(ax2.get_xticklabels()) == K.size - 3
    assert "µm" in ax2.get_ylabel()
    texts = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert texts == ["MAP", "NUTS"]
    with pytest.raises(ValueError, match="complete Zernike order"):
        plots.plot_coefficients(np.ones(7))


def test_correlation_from_covariance():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5))
    cov = A @ A.T + np.diag(np.arange(1, 6))
    labels = list("abcde")
    fig = plots.plot_correlation(cov, labels)
    ax = _main_axes(fig)[0]
    img = _data(_images(ax)[0])
    np.testing.assert_allclose(np.diag(img), 1.0)
    d = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(img, cov / np.outer(d, d))
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    with pytest.raises(ValueError, match="square"):
        plots.plot_correlation(np.ones((2, 3)))


@pytest.fixture(scope="module")
def idata():
    import arviz as az

    rng = np.random.default_rng(2)
    names = zernike.coeff_names(2)
    return az.from_dict(
        posterior={"K": rng.normal(size=(2, 60, len(names))), "c_dB": rng.normal(size=(2, 60))},
        coords={"zernike": names}, dims={"K": ["zernike"]},
    )


@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")
def test_arviz_wrappers(idata):
    import matplotlib.pyplot as plt

    sel = {"zernike": ["K(2,-2)", "K(2,0)"]}
    before = len(plt.get_fignums())
    tr = plots.plot_trace(idata, var_names=["K"], coords=sel)
    assert isinstance(tr, Figure) and len(tr.axes) == 4  # density + trace per coefficient
    rk = plots.plot_rank(idata, var_names=["K", "c_dB"], coords=sel)
    assert isinstance(rk, Figure) and len(rk.axes) == 3
    pr = plots.plot_pair(idata, var_names=["K"], coords=sel)
    assert isinstance(pr, Figure) and len(pr.axes) >= 3
    assert len(plt.get_fignums()) == before, "figures must be detached from pyplot"


def test_save_figures_png_pdf(tmp_path, case):
    data, model, K = case
    figs = {"coefficients": plots.plot_coefficients(K),
            "beams": plots.plot_beam_maps(data, model)}
    written = plots.save_figures(figs, tmp_path / "plots", pdf=True)
    names = sorted(p.name for p in written)
    assert names == ["beams.pdf", "beams.png", "coefficients.pdf", "coefficients.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == names  # no temp files
    assert (tmp_path / "plots" / "beams.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plots" / "beams.pdf").read_bytes()[:5] == b"%PDF-"


# ---------------------------------------------------------------- whole-run figure sets
@pytest.fixture(scope="module")
def views(case):
    """A FitView and a PosteriorView built by hand (no fit or sampler needed)."""
    import arviz as az

    from bayesoof.physics.telescope import get_telescope

    data, model, K = case
    rng = np.random.default_rng(4)
    J = K.size
    K_sd = np.r_[0.0, np.full(J - 1, 0.002)]
    names = zernike.coeff_names(ORDER)[1:] + ["c_dB"]
    A = rng.normal(size=(len(names), len(names)))
    cov = 1e-6 * (A @ A.T + np.eye(len(names)))
    fit_view = plots.FitView(
        data=data, telescope=get_telescope("effelsberg"), model_beam=model,
        sigma=np.concatenate([m.sigma for m in data.maps]), offsets=np.full(3, 0.5), K=K,
        K_sd=K_sd, K_cov=np.diag(K_sd**2), cov=cov, names=names, title="test",
    )
    free = zernike.coeff_names(ORDER)[1:]
    draws = K[1:] + 0.002 * rng.normal(size=(2, 50, J - 1))
    idata = az.from_dict(
        posterior={"K": draws, "c_dB": -14.5 + 0.3 * rng.normal(size=(2, 50))},
        coords={"zernike": free}, dims={"K": ["zernike"]},
    )
    K_draws = np.concatenate([np.zeros((100, 1)), draws.reshape(100, J - 1)], axis=1)
    post_view = plots.PosteriorView(fit_view, idata.posterior, K_draws, model * 1.001, "test")
    return fit_view, post_view


def test_fit_figures_set(views):
    fit_view, _ = views
    figs = plots.fit_figures(fit_view)
    assert sorted(figs) == ["beam_maps", "beam_maps_db", "coefficients", "correlation",
                            "phase", "phase_uncertainty"]
    assert len(_main_axes(figs["beam_maps"])) == 9 and len(_main_axes(figs["phase"])) == 2
    assert len(_main_axes(figs["phase_uncertainty"])) == 3
    assert _main_axes(figs["phase_uncertainty"])[0].get_title().startswith("Laplace mean")
    corr = _data(_images(_main_axes(figs["correlation"])[0])[0])
    np.testing.assert_allclose(np.diag(corr), 1.0)
    # Laplace draws follow N(K, K_cov)
    draws = fit_view.laplace_draws(4000)
    np.testing.assert_allclose(draws.std(axis=0), fit_view.K_sd, rtol=0.1, atol=1e-12)


@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")
def test_posterior_figures_set(views):
    _, post_view = views
    figs = plots.posterior_figures(post_view, n_vars=2)
    assert sorted(figs) == ["pair", "posterior_beam_maps", "posterior_coefficients",
                            "posterior_phase", "rank", "trace"]
    chosen = post_view.chosen(2)
    assert len(chosen) == 2 and not {"K(1,-1)", "K(1,1)"} & set(chosen)  # tilts last
    assert len(figs["trace"].axes) == 2 * (len(chosen) + 1)  # chosen K and c_dB
    assert len(figs["posterior_coefficients"].axes[0].containers) == 2  # MAP and posterior
