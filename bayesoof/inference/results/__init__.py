"""Quick-fit results: the :class:`FitResult` record, its per-order records, and its views.

* :mod:`.order` — :class:`OrderResult`, the least-squares solution of one Zernike order;
* :mod:`.record` — :class:`FitResult`, what :func:`bayesoof.fit` returns (plain floats);
* :mod:`.view` — the Quantity edge (``WAVE``, coefficient table) and the text report;
* :mod:`.summary` — its ``summary.json`` content; :mod:`.inference_data` — its
  ``result.nc`` groups; :mod:`.rundir` — the run directory written by ``FitResult.save``.
"""

from bayesoof.inference.results.order import OrderResult
from bayesoof.inference.results.record import FitResult
from bayesoof.inference.results.view import WAVE

__all__ = ["WAVE", "FitResult", "OrderResult"]
