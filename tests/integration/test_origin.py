"""Requests from elsewhere: with no token configured, a page on another
origin must not be able to POST to a local postdate (a form needs no
CORS), nor a DNS-rebound name reach it; Host is checked against
server_names."""

from harness import Stack

FORM = {"url": "http://127.0.0.1:9/x", "delay": "1h"}


def assert_403(r, word):
    assert r.status == 403, r
    assert r.header("Content-Type") == "application/json", r.headers
    assert word in r.json["error"], r


def test_without_a_token_a_post_from_another_origin_is_refused_and_writes_nothing():
    with Stack(tokens=()) as s:
        own = f"http://127.0.0.1:{s.port}"
        # (nginx passes Host without its port, so a page on another port of
        # the same name is not told apart here; the unit tests check ports.)
        for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example",
                       f"https://127.0.0.1:{s.port}x", "http://localhost", "file://",
                       f"ftp://127.0.0.1:{s.port}"):
            r = s.post_form("/api/schedule", FORM, token=None, headers={"Origin": origin})
            assert_403(r, "origin")
            r = s.post_form("/api/cancel", {"id": "x"}, token=None,
                            headers={"Origin": origin})
            assert_403(r, "origin")
        assert s.count() == 0
        # The page's own origin, and clients that send none (curl), are served.
        r = s.post_form("/api/schedule", FORM, token=None, headers={"Origin": own})
        assert r.status == 201, r
        r = s.post_form("/api/schedule", FORM, token=None,
                        headers={"Origin": own.replace("http:", "HTTP:")})
        assert r.status == 201, r
        assert s.post_form("/api/schedule", FORM, token=None).status == 201
        assert s.count() == 3


def test_with_a_token_another_origin_still_needs_the_token():
    with Stack() as s:
        r = s.post_form("/api/schedule", FORM, token=None,
                        headers={"Origin": "http://evil.example"})
        assert r.status == 401, r
        # A holder of the token is trusted wherever its page is.
        r = s.post_form("/api/schedule", FORM, headers={"Origin": "http://tool.example"})
        assert r.status == 201, r


def test_without_a_token_only_loopback_host_names_are_answered_by_default():
    with Stack(tokens=()) as s:
        # A rebound name: same origin to the browser, but not this server's name.
        r = s.post_form("/api/schedule", FORM, token=None,
                        headers={"Host": "rebound.evil.example",
                                 "Origin": "http://rebound.evil.example"})
        assert_403(r, "server_names")
        r = s.get("/api/status", token=None, headers={"Host": f"rebound.evil.example:{s.port}"})
        assert_403(r, "server_names")
        for host in (f"127.0.0.1:{s.port}", f"localhost:{s.port}", f"[::1]:{s.port}",
                     "LOCALHOST"):
            r = s.get("/api/status", token=None, headers={"Host": host})
            assert r.status == 200, (host, r)
        assert s.count() == 0


def test_server_names_lists_the_names_requests_may_be_addressed_to():
    with Stack(config={"server_names": "postdate.example, 127.0.0.1"}) as s:
        assert s.get("/api/status").status == 200
        r = s.get("/api/status", headers={"Host": "Postdate.Example:8443"})
        assert r.status == 200, r
        for host in ("localhost", "other.example", "postdate.example.evil"):
            r = s.get("/api/status", headers={"Host": host})
            assert_403(r, "server_names")
        # Health too: a load balancer names the server as clients do.
        assert_403(s.get("/api/health", token=None, headers={"Host": "other.example"}),
                   "server_names")
    # With a token and no server_names, any name is answered: the token,
    # which a rebinding page cannot know, is the guard.
    with Stack() as s:
        assert s.get("/api/status", headers={"Host": "any.example"}).status == 200
