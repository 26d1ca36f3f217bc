"""The dashboard page (GET /dashboard, docs/dashboard.md): three static files served by
ApiFunction, read once per container. The page is public; its data calls need the token."""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
PAGE = "index.html"
# The public paths: the page, and its assets (relative to it: dashboard/<file>).
PATHS = {"/dashboard": PAGE} | {f"/dashboard/{name}": name for name in FILES if name != PAGE}
# API Gateway sends /dashboard/ to the /dashboard route; the page's relative addresses would
# point one level too deep from there, so it redirects to the page. Relative, so that a base
# path in front (a custom domain's mapping) is kept.
TRAILING_SLASH = "/dashboard/"
PAGE_FROM_TRAILING_SLASH = "../dashboard"
PATHS[TRAILING_SLASH] = PAGE
# No inline script or style, nothing from elsewhere: the data comes from this API only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "public, max-age=300",
}


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str


@lru_cache(maxsize=len(FILES))
def asset(name: str) -> Asset | None:
    """One of the dashboard's files, or None for any other name."""
    if name not in FILES:
        return None
    return Asset((HERE / name).read_text(encoding="utf-8"), FILES[name])
