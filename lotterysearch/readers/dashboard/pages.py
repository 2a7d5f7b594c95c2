"""The dashboard's HTML: one shell per page (the browser script fills it from the JSON API) and the error
page. Every value from the store or the request is escaped; scripts and styles come from this server only.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

PAGES = ("runs", "run", "mask", "compare")
PLOT_PAGES = ("run", "compare")  # the pages that draw with Plotly: only they load its 4.8 MB bundle


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _layout(title: str, body: str, *, scripts: bool, plots: bool = False) -> str:
    plotly = '<script src="/static/plotly.min.js"></script>\n' if plots else ""
    js = f'{plotly}<script src="/static/dashboard.js"></script>' if scripts else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · lotterysearch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body>
<nav><a href="/">runs</a> · <a href="/compare">compare</a> <span class="ws"></span></nav>
{body}
{js}
</body>
</html>
"""


def page(kind: str, title: str, data: Mapping[str, object]) -> str:
    """A page's shell: ``data`` becomes the ``data-*`` attributes the script reads (run id, mask id)."""
    if kind not in PAGES:
        raise ValueError(f"unknown page {kind!r}")
    attrs = " ".join(f'data-{_e(k)}="{_e(v)}"' for k, v in data.items())
    body = (
        f'<main id="app" data-page="{kind}" {attrs}>\n<h1>{_e(title)}</h1>\n'
        '<p class="status" id="status">loading…</p>\n</main>\n'
        "<noscript>This dashboard draws its pages with JavaScript; the same data is at /api/.</noscript>"
    )
    return _layout(title, body, scripts=True, plots=kind in PLOT_PAGES)


def error_page(status: int, message: str) -> str:
    """One line saying what is wrong, no traceback."""
    body = f'<main id="error"><h1>error {status}</h1>\n<p class="error">{_e(message)}</p></main>'
    return _layout(f"error {status}", body, scripts=False)
