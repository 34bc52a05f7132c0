-- wrk script: form POSTs to /api/schedule, as a client scheduling webhooks
-- would send them, each an hour ahead (so nothing is delivered meanwhile), to
-- a port that allow_ports accepts by default (nothing listens there).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "url=http%3A%2F%2F127.0.0.1%3A9009%2Fhook&delay=1h&payload=renewal+reminder+for+card+42"
