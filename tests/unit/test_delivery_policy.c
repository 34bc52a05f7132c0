/*
 * test_delivery_policy.c: the pure parts of delivery: backoff between
 * rounds, Retry-After, Standard Webhooks signatures and the pool kept
 * after 410s.
 */
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"
#include "delivery.h"
#include "unit.h"

static struct pd_config
config_with_backoff(int base, int max)
{
	struct pd_config cfg;

	config_defaults(&cfg);
	cfg.retry_base = base;
	cfg.retry_max = max;
	return cfg;
}

static void
test_backoff_doubles_each_round_within_the_jitter(void)
{
	struct pd_config cfg = config_with_backoff(5, 3600);

	/* random 200 of 0..400 is the middle of the jitter: factor 1.0. */
	CHECK_INT(retry_delay(&cfg, 1, 0, 200), 5000);
	CHECK_INT(retry_delay(&cfg, 2, 0, 200), 10000);
	CHECK_INT(retry_delay(&cfg, 3, 0, 200), 20000);
	CHECK_INT(retry_delay(&cfg, 1, 0, 0), 4000);     /* factor 0.8 */
	CHECK_INT(retry_delay(&cfg, 1, 0, 400), 6000);   /* factor 1.2 */
	/* The jitter never lets a later round come sooner than an earlier one. */
	CHECK(retry_delay(&cfg, 2, 0, 0) > retry_delay(&cfg, 1, 0, 400));
}

static void
test_backoff_is_capped_at_retry_max_even_after_many_rounds(void)
{
	struct pd_config cfg = config_with_backoff(5, 60);

	CHECK_INT(retry_delay(&cfg, 10, 0, 400), 60000);
	CHECK_INT(retry_delay(&cfg, 100, 0, 200), 60000);
}

static void
test_retry_after_pushes_the_next_round_but_not_past_retry_max(void)
{
	struct pd_config cfg = config_with_backoff(1, 30);

	CHECK_INT(retry_delay(&cfg, 1, 7000, 200), 7000);
	CHECK_INT(retry_delay(&cfg, 1, 500, 200), 1000);  /* shorter than backoff */
	CHECK_INT(retry_delay(&cfg, 1, 3600000, 200), 30000);
}

static void
test_retry_after_reads_seconds_and_http_dates(void)
{
	pd_ms now = 1784000000000LL;    /* 2026-07-14T03:33:20Z */

	CHECK_INT(retry_after_parse("120", now), 120000);
	CHECK_INT(retry_after_parse(" 3 ", now), 3000);
	CHECK_INT(retry_after_parse("0", now), 0);
	CHECK_INT(retry_after_parse("Tue, 14 Jul 2026 03:34:20 GMT", now), 60000);
	/* A date in the past, junk, a negative number: no delay asked. */
	CHECK_INT(retry_after_parse("Tue, 14 Jul 2026 03:00:00 GMT", now), 0);
	CHECK_INT(retry_after_parse("soon", now), 0);
	CHECK_INT(retry_after_parse("-5", now), 0);
	CHECK_INT(retry_after_parse("5s", now), 0);
	CHECK_INT(retry_after_parse(NULL, now), 0);
	/* Huge values saturate instead of overflowing (the caller caps them). */
	CHECK(retry_after_parse("99999999999999999999999", now) > 0);
}

/* The example from the Standard Webhooks specification's libraries. */
static void
test_signature_matches_the_standard_webhooks_example(void)
{
	struct pd_signer sg;
	char sig[PD_SIGNATURE_BUF];
	const char *body = "{\"test\": 2432232314}";

	CHECK_INT(sign_init(&sg, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), 0);
	CHECK_INT(sg.enabled, 1);
	CHECK_INT(sign_webhook(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
	                       strlen(body), sig), 0);
	CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

/* Issue 13 item 9: the timestamp and signature lines are written when a
 * request goes out, in place, into lines made at their longest: they must
 * fit, and sign what they say. */
static void
test_stamp_lines_written_in_place_sign_the_time_they_say(void)
{
	struct pd_signer sg;
	char stamp[PD_STAMP_LINE], signature[PD_SIGNATURE_LINE];
	const char *body = "{\"test\": 2432232314}";

	CHECK_INT(sign_init(&sg, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), 0);
	CHECK_INT(sign_stamp_lines(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
	                           strlen(body), stamp, sizeof(stamp), signature), 0);
	CHECK_STR(stamp, "webhook-timestamp: 1614265330");
	CHECK_STR(signature, "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* The longest timestamp there is still fits. */
	CHECK_INT(sign_stamp_lines(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", -9223372036854775807LL - 1,
	                           body, strlen(body), stamp, sizeof(stamp), signature), 0);
	CHECK_STR(stamp, "webhook-timestamp: -9223372036854775808");
	/* A line too short is refused, not overrun. */
	CHECK(sign_stamp_lines(&sg, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
	                       stamp, 20, signature) != 0);
	/* Without a secret only the timestamp is written. */
	CHECK_INT(sign_init(&sg, NULL), 0);
	memset(signature, 'x', sizeof(signature));
	CHECK_INT(sign_stamp_lines(&sg, "msg_1", 42, "", 0, stamp, sizeof(stamp), NULL), 0);
	CHECK_STR(stamp, "webhook-timestamp: 42");
}

/* Slots are shared per host:port (issue 13 item 4): spellings of one
 * host count together, other ports and schemes apart. */
static void
test_host_key_names_scheme_host_and_port(void)
{
	char key[PD_HOST_KEY_MAX];

	delivery_host_key("http://Example.COM/hook?x=1", key);
	CHECK_STR(key, "http://example.com:80");
	delivery_host_key("http://user:pw@example.com:80/other", key);
	CHECK_STR(key, "http://example.com:80");
	delivery_host_key("https://example.com#frag", key);
	CHECK_STR(key, "https://example.com:443");
	delivery_host_key("http://127.0.0.2:8080/hang", key);
	CHECK_STR(key, "http://127.0.0.2:8080");
	delivery_host_key("http://[::1]/x", key);
	CHECK_STR(key, "http://[::1]:80");
	delivery_host_key("http://[::1]:9000/x", key);
	CHECK_STR(key, "http://[::1]:9000");
}

static void
test_no_secret_means_no_signing(void)
{
	struct pd_signer sg;

	CHECK_INT(sign_init(&sg, NULL), 0);
	CHECK_INT(sg.enabled, 0);
	CHECK(sign_init(&sg, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") != 0);
}

static struct pd_job *
job_with_urls(const char *urls, unsigned gone)
{
	struct pd_message m = { 0 };
	struct store_lease lease = { .key = 1, .token = 1, .gone = gone };

	m.urls = strdup(urls);
	m.payload = strdup("");
	m.content_type = strdup("text/plain");
	return job_new(&m, &lease);
}

static void
test_the_dropped_urls_are_kept_by_index_across_rounds(void)
{
	struct pd_job *job = job_with_urls("http://a/\nhttp://b/\nhttp://c/", 0);

	CHECK_INT(job->npool, 3);
	CHECK_STR(job->pool[1], "http://b/");
	CHECK_INT(job_gone(job), 0);
	job->gone[1] = 1;
	CHECK_INT(job_gone(job), 2);
	job->gone[0] = job->gone[2] = 1;
	CHECK_INT(job_gone(job), 7);
	job_free(job);

	/* A later round's claim gives the bits back: the same URLs stay out. */
	job = job_with_urls("http://a/\nhttp://b/\nhttp://c/", 5);
	CHECK_INT(job->gone[0], 1);
	CHECK_INT(job->gone[1], 0);
	CHECK_INT(job->gone[2], 1);
	CHECK_INT(job_gone(job), 5);
	job_free(job);
}

static void
test_utf8_check_refuses_broken_and_overlong_sequences(void)
{
	CHECK(utf8_valid("plain", 5));
	CHECK(utf8_valid("caf\xc3\xa9", 5));
	CHECK(utf8_valid("a\0b", 3));
	CHECK(!utf8_valid("\xff\x00\xfe", 3));
	CHECK(!utf8_valid("\xc3", 1));            /* cut short */
	CHECK(!utf8_valid("\xc0\xaf", 2));        /* overlong "/" */
	CHECK(!utf8_valid("\xed\xa0\x80", 3));    /* a surrogate */
}

static const struct unit_test tests[] = {
	UNIT(test_backoff_doubles_each_round_within_the_jitter),
	UNIT(test_backoff_is_capped_at_retry_max_even_after_many_rounds),
	UNIT(test_retry_after_pushes_the_next_round_but_not_past_retry_max),
	UNIT(test_retry_after_reads_seconds_and_http_dates),
	UNIT(test_signature_matches_the_standard_webhooks_example),
	UNIT(test_stamp_lines_written_in_place_sign_the_time_they_say),
	UNIT(test_host_key_names_scheme_host_and_port),
	UNIT(test_no_secret_means_no_signing),
	UNIT(test_the_dropped_urls_are_kept_by_index_across_rounds),
	UNIT(test_utf8_check_refuses_broken_and_overlong_sequences),
};

int
main(void)
{
	return unit_run("delivery_policy", tests, UNIT_COUNT(tests));
}
