/* test_config.c: the configuration file parser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postdate.h"
#include "delivery.h"
#include "request.h"
#include "unit.h"

/* Writes text to a fresh file and loads it; returns config_load's result. */
static int
load_text(struct pd_config *cfg, const char *text, size_t len, char *err, size_t errlen)
{
	char path[] = "/tmp/postdate-config-XXXXXX";
	int fd = mkstemp(path), rc;

	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		return -2;
	close(fd);
	rc = config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void
test_defaults_match_api_md(void)
{
	struct pd_config cfg;

	config_defaults(&cfg);
	CHECK_INT(cfg.max_body, 1048576);
	CHECK_INT(cfg.max_pending, 1000000);
	CHECK_INT(cfg.default_max_attempts, 8);
	CHECK_INT(cfg.default_timeout, 10);
	CHECK_INT(cfg.retry_base, 5);
	CHECK_INT(cfg.retry_max, 3600);
	CHECK_INT(cfg.buffer_horizon, 3600);
	CHECK_INT(cfg.concurrency, 64);
	CHECK_INT(cfg.synchronous_full, 1);
	CHECK_INT(cfg.ntokens, 0);
}

static void
test_every_key_is_read(void)
{
	static const char text[] =
	    "# a comment\n"
	    "\n"
	    "database = /tmp/x.db\n"
	    "token = aaaaaaaaaaaaaaaa1\n"
	    "  token=bbbbbbbbbbbbbbbb2  \n"
	    "allow_targets = 127.0.0.0/8, ::1, 10.1.2.3\n"
	    "signing_secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
	    "max_body = 2048\n"
	    "max_pending = 5\n"
	    "default_max_attempts = 3\n"
	    "default_timeout = 20\n"
	    "retry_base = 2\n"
	    "retry_max = 60\n"
	    "buffer_horizon = 600\n"
	    "concurrency = 8\n"
	    "synchronous = normal\n";
	struct pd_config cfg;
	char err[256] = "";

	CHECK_INT(load_text(&cfg, text, sizeof(text) - 1, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.database, "/tmp/x.db");
	CHECK_INT(cfg.ntokens, 2);
	CHECK_STR(cfg.tokens[1], "bbbbbbbbbbbbbbbb2");
	CHECK_INT(cfg.nallow, 3);
	CHECK_INT(cfg.allow[0].prefix, 96 + 8);
	CHECK_INT(cfg.allow[1].prefix, 128);
	CHECK_INT(cfg.allow[2].addr[15], 3);
	CHECK_INT(cfg.max_body, 2048);
	CHECK_INT(cfg.max_pending, 5);
	CHECK_INT(cfg.default_max_attempts, 3);
	CHECK_INT(cfg.default_timeout, 20);
	CHECK_INT(cfg.retry_base, 2);
	CHECK_INT(cfg.retry_max, 60);
	CHECK_INT(cfg.buffer_horizon, 600);
	CHECK_INT(cfg.concurrency, 8);
	CHECK_INT(cfg.synchronous_full, 0);
	config_free(&cfg);
}

/* retention is a duration (7d by default); 0 keeps every message. */
static void
test_retention_is_a_duration_and_0_keeps_everything(void)
{
	static const struct {
		const char *text;
		pd_ms want;
	} cases[] = {
		{ "", 7 * 86400 * 1000LL },
		{ "retention = 0\n", 0 },
		{ "retention = 12h\n", 12 * 3600 * 1000LL },
		{ "retention = 1d12h\n", 36 * 3600 * 1000LL },
		{ "retention = 90\n", 90 * 1000LL },
	};

	for (size_t i = 0; i < UNIT_COUNT(cases); i++) {
		struct pd_config cfg;
		char err[256] = "";

		CHECK_INT(load_text(&cfg, cases[i].text, strlen(cases[i].text), err, sizeof(err)), 0);
		CHECK_STR(err, "");
		CHECK_INT(cfg.retention, cases[i].want);
		config_free(&cfg);
	}
}

/* A PostgreSQL URL is not a path: it reaches the store as written. */
static void
test_postgresql_url_is_kept_as_written(void)
{
	static const char *const urls[] = {
		"postgresql://pd@127.0.0.1:5432/postdate?sslmode=disable",
		"postgres://pd@db.example/postdate",
	};

	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct pd_config cfg;
		char text[160], err[256];
		int n = snprintf(text, sizeof(text), "database = %s\n", urls[i]);

		CHECK_INT(load_text(&cfg, text, (size_t)n, err, sizeof(err)), 0);
		CHECK_STR(cfg.database, urls[i]);
		config_free(&cfg);
	}
}

static void
test_relative_database_is_beside_the_file(void)
{
	struct pd_config cfg;
	char err[256];

	CHECK_INT(load_text(&cfg, "database = my.db\n", 17, err, sizeof(err)), 0);
	CHECK_STR(cfg.database, "/tmp/my.db");
	config_free(&cfg);
}

static void
test_errors_name_the_line(void)
{
	static const struct {
		const char *text;
		const char *err_contains;
	} cases[] = {
		{ "max_body = 2048\nnonsense = 1\n", ":2: unknown key \"nonsense\"" },
		{ "concurrency = 0\n", ":1: concurrency must be" },
		{ "concurrency = 10001\n", ":1: concurrency must be" },
		{ "concurrency = 5x\n", ":1: concurrency must be" },
		{ "concurrency = -5\n", ":1: concurrency must be" },
		{ "concurrency = \n", ":1: concurrency has no value" },
		{ "concurrency 5\n", ":1: expected \"key = value\"" },
		{ "= 5\n", ":1: expected \"key = value\"" },
		{ "synchronous = off\n", ":1: synchronous must be full or normal" },
		{ "token = short\n", ":1: token must be" },
		{ "token = has a space in it ok\n", ":1: token must be" },
		{ "allow_targets = 10.0.0.0/33\n", ":1: allow_targets must be" },
		{ "allow_targets = example.com\n", ":1: allow_targets must be" },
		{ "allow_targets = 10.0.0.0/8,\n", ":1: allow_targets must be" },
		{ "allow_targets = 10.0.0.0/+8\n", ":1: allow_targets must be" },
		{ "allow_targets = 0177.0.0.1\n", ":1: allow_targets must be" },
		{ "signing_secret = abc\n", ":1: signing_secret must be" },
		{ "signing_secret = whsec_!!!!\n", ":1: signing_secret must be" },
		{ "signing_secret = whsec_YWJj\n", ":1: signing_secret must be" },
		{ "max_body = 99999999999999999999\n", ":1: max_body must be" },
		{ "retention = soon\n", ":1: retention must be a duration" },
		{ "retention = -1d\n", ":1: retention must be a duration" },
		{ "retention = 7x\n", ":1: retention must be a duration" },
		{ "retry_base = 100\nretry_max = 10\n", "retry_max (10) is below retry_base (100)" },
		/* Regression: a single-valued key given twice took the last. */
		{ "max_body = 2048\n# x\nmax_body = 4096\n",
		  ":3: max_body is already set on line 1" },
		{ "database = a.db\ndatabase = b.db\n", ":2: database is already set on line 1" },
		{ "synchronous = full\nconcurrency = 4\nsynchronous = normal\n",
		  ":3: synchronous is already set on line 1" },
		/* A '#' without a space before it is part of the value. */
		{ "max_body = 2048#bytes\n", ":1: max_body must be" },
	};

	for (size_t i = 0; i < UNIT_COUNT(cases); i++) {
		struct pd_config cfg;
		char err[256] = "";

		CHECK_INT(load_text(&cfg, cases[i].text, strlen(cases[i].text), err, sizeof(err)), -1);
		if (strstr(err, cases[i].err_contains) == NULL) {
			fprintf(stderr, "  case %zu: \"%s\" lacks \"%s\"\n", i, err, cases[i].err_contains);
			unit_failed_checks++;
		}
		config_free(&cfg);
	}
}

/* Regression: "max_body = 2048  # bytes" was an error saying max_body must
 * be a whole number. A "#" after a space or tab starts a comment. */
static void
test_trailing_comment_after_a_value_is_ignored(void)
{
	static const char text[] =
	    "max_body = 2048  # bytes\n"
	    "concurrency = 8\t# per dispatcher\n"
	    "token = abc#def0123456789xyz # the # inside stays\n"
	    "synchronous = normal #\n";
	struct pd_config cfg;
	char err[256] = "";

	CHECK_INT(load_text(&cfg, text, strlen(text), err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_INT(cfg.max_body, 2048);
	CHECK_INT(cfg.concurrency, 8);
	CHECK_INT(cfg.ntokens, 1);
	if (cfg.ntokens == 1)
		CHECK_STR(cfg.tokens[0], "abc#def0123456789xyz");
	CHECK_INT(cfg.synchronous_full, 0);
	config_free(&cfg);
	CHECK_INT(load_text(&cfg, "max_body =   # none\n", 20, err, sizeof(err)), -1);
	CHECK(strstr(err, "max_body has no value") != NULL);
	config_free(&cfg);
}

/* token and allow_targets lines add up; they are the only repeatable keys. */
static void
test_tokens_and_allow_targets_may_repeat(void)
{
	static const char text[] =
	    "token = first-token-0123456789\ntoken = second-token-0123456789\n"
	    "allow_targets = 10.0.0.0/8\nallow_targets = 192.168.0.0/16, ::1\n";
	struct pd_config cfg;
	char err[256] = "";

	CHECK_INT(load_text(&cfg, text, strlen(text), err, sizeof(err)), 0);
	CHECK_INT(cfg.ntokens, 2);
	CHECK_INT(cfg.nallow, 3);
	config_free(&cfg);
}

static void
test_nul_byte_and_long_line_are_errors(void)
{
	struct pd_config cfg;
	char err[256] = "", *big;

	CHECK_INT(load_text(&cfg, "database = a\0b\n", 15, err, sizeof(err)), -1);
	CHECK(strstr(err, ":1: NUL byte") != NULL);
	config_free(&cfg);

	big = malloc(5000);
	memset(big, 'x', 5000);
	memcpy(big, "# ", 2);
	CHECK_INT(load_text(&cfg, big, 5000, err, sizeof(err)), -1);
	CHECK(strstr(err, ":1: line longer than") != NULL);
	config_free(&cfg);
	free(big);
}

/* What the fuzz harness tests/fuzz/fuzz_config.c calls: config_load
 * without the file, the same errors and the database beside the path. */
static void
test_text_parses_as_the_file_would(void)
{
	static const char text[] = "database = my.db\nconcurrency = 8";
	struct pd_config cfg;
	char err[256] = "";

	CHECK_INT(config_parse_text(&cfg, "/etc/pd/x.conf", text, sizeof(text) - 1, err,
	                            sizeof(err)), 0);
	CHECK_STR(cfg.database, "/etc/pd/my.db");
	CHECK_INT(cfg.concurrency, 8);
	config_free(&cfg);
	CHECK_INT(config_parse_text(&cfg, "/etc/pd/x.conf", "# a\na\0b", 6, err, sizeof(err)), -1);
	CHECK_STR(err, "/etc/pd/x.conf:2: NUL byte in line");
	config_free(&cfg);
}

static void
test_missing_file_is_an_error(void)
{
	struct pd_config cfg;
	char err[256] = "";

	CHECK_INT(config_load(&cfg, "/nonexistent/postdate.conf", err, sizeof(err)), -1);
	CHECK(strstr(err, "No such file") != NULL);
	config_free(&cfg);
}

static void
test_path_order_flag_then_env_then_etc(void)
{
	unsetenv("POSTDATE_CONF");
	CHECK_STR(config_path(NULL), "/etc/postdate.conf");
	setenv("POSTDATE_CONF", "/tmp/env.conf", 1);
	CHECK_STR(config_path(NULL), "/tmp/env.conf");
	CHECK_STR(config_path("/tmp/flag.conf"), "/tmp/flag.conf");
	unsetenv("POSTDATE_CONF");
}

static void
test_bearer_token_compare(void)
{
	struct pd_config cfg;
	char err[256];

	config_defaults(&cfg);
	CHECK(auth_bearer_ok(&cfg, NULL));
	CHECK_INT(config_parse_line(&cfg, "token = aaaaaaaaaaaaaaaa1", err, sizeof(err)), 0);
	CHECK_INT(config_parse_line(&cfg, "token = bbbbbbbbbbbbbbbb2", err, sizeof(err)), 0);
	CHECK(auth_bearer_ok(&cfg, "Bearer aaaaaaaaaaaaaaaa1"));
	CHECK(auth_bearer_ok(&cfg, "bearer bbbbbbbbbbbbbbbb2"));
	CHECK(!auth_bearer_ok(&cfg, NULL));
	CHECK(!auth_bearer_ok(&cfg, ""));
	CHECK(!auth_bearer_ok(&cfg, "Bearer aaaaaaaaaaaaaaaa"));
	CHECK(!auth_bearer_ok(&cfg, "Bearer aaaaaaaaaaaaaaaa12"));
	CHECK(!auth_bearer_ok(&cfg, "Basic aaaaaaaaaaaaaaaa1"));
	CHECK(!auth_bearer_ok(&cfg, "aaaaaaaaaaaaaaaa1"));
	config_free(&cfg);
}

static void
test_allow_ports_are_ports_and_ranges_within_1_to_65535(void)
{
	static const char *bad[] = {
		"allow_ports = 0", "allow_ports = 65536", "allow_ports = 80-", "allow_ports = 90-80",
		"allow_ports = 80,,443", "allow_ports = 80,", "allow_ports = -80", "allow_ports = +80",
		"allow_ports = 80 443", "allow_ports = 0080000", "allow_ports = http",
	};
	struct pd_config cfg;
	char err[256];

	config_defaults(&cfg);
	CHECK_INT(cfg.nports, 3);
	CHECK(target_port_refused(&cfg, 25) != NULL);
	CHECK(target_port_refused(&cfg, 1023) != NULL);
	CHECK(target_port_refused(&cfg, 80) == NULL);
	CHECK(target_port_refused(&cfg, 1024) == NULL);
	CHECK_INT(config_parse_line(&cfg, "allow_ports = 25,\t8000 - 8100", err, sizeof(err)), -1);
	CHECK_INT(config_parse_line(&cfg, "allow_ports = 25,\t8000-8100 , 9", err, sizeof(err)), 0);
	CHECK_INT(cfg.nports, 3);
	CHECK(target_port_refused(&cfg, 25) == NULL);
	CHECK(target_port_refused(&cfg, 8100) == NULL);
	CHECK(target_port_refused(&cfg, 443) != NULL);
	for (size_t i = 0; i < UNIT_COUNT(bad); i++) {
		if (config_parse_line(&cfg, bad[i], err, sizeof(err)) != -1) {
			fprintf(stderr, "  accepted %s\n", bad[i]);
			unit_failed_checks++;
		} else
			CHECK(strstr(err, "allow_ports") != NULL);
	}
	config_free(&cfg);
}

/* The configured tokens are hashed once, as the file is read, not on every
 * request: a request compares only its own token's hash. Overwriting the
 * text after loading shows which one the comparison uses. */
static void
test_token_hashes_are_computed_when_the_file_is_read(void)
{
	struct pd_config cfg;
	char err[256];

	config_defaults(&cfg);
	CHECK_INT(config_parse_line(&cfg, "token = aaaaaaaaaaaaaaaa1", err, sizeof(err)), 0);
	CHECK_INT(config_parse_line(&cfg, "token = bbbbbbbbbbbbbbbb2", err, sizeof(err)), 0);
	memset(cfg.tokens[0], 'z', strlen(cfg.tokens[0]));
	CHECK(auth_bearer_ok(&cfg, "Bearer aaaaaaaaaaaaaaaa1"));
	CHECK(!auth_bearer_ok(&cfg, "Bearer zzzzzzzzzzzzzzzzz"));
	CHECK(auth_bearer_ok(&cfg, "Bearer bbbbbbbbbbbbbbbb2"));
	config_free(&cfg);
}

static const struct unit_test tests[] = {
	UNIT(test_defaults_match_api_md),
	UNIT(test_every_key_is_read),
	UNIT(test_retention_is_a_duration_and_0_keeps_everything),
	UNIT(test_relative_database_is_beside_the_file),
	UNIT(test_postgresql_url_is_kept_as_written),
	UNIT(test_errors_name_the_line),
	UNIT(test_trailing_comment_after_a_value_is_ignored),
	UNIT(test_tokens_and_allow_targets_may_repeat),
	UNIT(test_nul_byte_and_long_line_are_errors),
	UNIT(test_text_parses_as_the_file_would),
	UNIT(test_missing_file_is_an_error),
	UNIT(test_path_order_flag_then_env_then_etc),
	UNIT(test_bearer_token_compare),
	UNIT(test_token_hashes_are_computed_when_the_file_is_read),
	UNIT(test_allow_ports_are_ports_and_ranges_within_1_to_65535),
};

int
main(void)
{
	return unit_run("config", tests, UNIT_COUNT(tests));
}
