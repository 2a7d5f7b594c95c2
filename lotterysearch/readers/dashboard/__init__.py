"""``lotterysearch dashboard``: a live, read-only web view of a workspace's store.

Pages: the runs (live status and progress), a run (its interactive Pareto front, every evaluated mask,
hypervolume per generation, successive-halving rungs, confirmations), a mask (layers, images, class, lineage,
download) and a comparison (fronts overlaid; the overlap of two masks raw and aligned), all drawn in the
browser from a JSON API. ``app`` is the web application, ``views`` what each page shows, ``images`` the
mask pictures, ``pages`` the HTML, ``server`` where it listens. Needs the ``dashboard`` extra.
"""

from lotterysearch.readers.dashboard.app import create_app
from lotterysearch.readers.dashboard.server import serve

__all__ = ["create_app", "serve"]
