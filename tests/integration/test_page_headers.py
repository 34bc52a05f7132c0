"""The page is served so that a browser runs only its own files: a
Content-Security-Policy without inline script or style, framing refused
(frame-ancestors 'none'), and no content sniffing, through nginx (here) and
Apache (test_apache.py)."""

from harness import Stack


def assert_page_headers(r):
    csp = r.header("Content-Security-Policy")
    assert csp, r.headers
    rules = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert rules.get("default-src") == ["'none'"], csp
    assert rules.get("script-src") == ["'self'"], csp
    assert rules.get("style-src") == ["'self'"], csp
    assert rules.get("connect-src") == ["'self'"], csp
    assert rules.get("frame-ancestors") == ["'none'"], csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
    assert r.header("X-Content-Type-Options") == "nosniff", r.headers
    assert r.header("X-Frame-Options") == "DENY", r.headers


def test_the_page_and_its_files_carry_csp_nosniff_and_frame_ancestors_none():
    with Stack() as s:
        for path in ("/", "/index.html", "/app.js", "/style.css"):
            r = s.get(path, token=None)
            assert r.status == 200, (path, r)
            assert_page_headers(r)
        # The API's JSON is never sniffed into something else either, its
        # errors included.
        for r in (s.get("/api/health", token=None), s.get("/api/status", token=None),
                  s.get("/api/nothing", token=None)):
            assert r.header("X-Content-Type-Options") == "nosniff", (r, r.headers)
