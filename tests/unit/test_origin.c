/*
 * test_origin.c: which Host and Origin headers a request may carry: with
 * no token only loopback names (or server_names) and the page's own
 * origin; with a token, any origin and any name unless server_names says.
 */
#include <stdio.h>
#include <string.h>

#include "postdate.h"
#include "unit.h"

static struct pd_config
config_of(const char *lines[])
{
	struct pd_config cfg;
	char err[256];

	config_defaults(&cfg);
	for (; *lines != NULL; lines++)
		if (config_parse_line(&cfg, *lines, err, sizeof(err)) != 0) {
			fprintf(stderr, "  %s: %s\n", *lines, err);
			unit_failed_checks++;
		}
	return cfg;
}

static void
test_without_a_token_only_the_pages_own_origin_is_served(void)
{
	const char *none[] = { NULL };
	struct pd_config cfg = config_of(none);

	CHECK(origin_refused(&cfg, "127.0.0.1:8080", NULL) == NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1:8080", "http://127.0.0.1:8080") == NULL);
	CHECK(origin_refused(&cfg, "localhost", "http://LOCALHOST") == NULL);
	CHECK(origin_refused(&cfg, "localhost", "http://localhost:80") == NULL);
	CHECK(origin_refused(&cfg, "localhost", "http://localhost:3000") == NULL);  /* no port to compare */
	CHECK(origin_refused(&cfg, "[::1]:8080", "http://[::1]:8080") == NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1:8080", "http://127.0.0.1:8081") != NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1:443", "http://127.0.0.1") != NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1:443", "https://127.0.0.1") == NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1", "http://evil.example") != NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1", "null") != NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1", "") != NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1", "http://127.0.0.1:") != NULL);
	CHECK(origin_refused(&cfg, "127.0.0.1", "http://127.0.0.1:99999") != NULL);
	CHECK(strstr(origin_refused(&cfg, "127.0.0.1", "null"), "origin") != NULL);
	config_free(&cfg);
}

static void
test_without_a_token_or_server_names_only_loopback_names_are_answered(void)
{
	const char *none[] = { NULL };
	struct pd_config cfg = config_of(none);

	CHECK(origin_refused(&cfg, "localhost.", NULL) == NULL);
	CHECK(origin_refused(&cfg, "rebound.example", NULL) != NULL);
	CHECK(origin_refused(&cfg, "rebound.example", "http://rebound.example") != NULL);
	CHECK(origin_refused(&cfg, "127.0.0.2", NULL) != NULL);
	CHECK(origin_refused(&cfg, "[::1", NULL) != NULL);
	/* No Host is no browser (a plain CGI run): nothing to rebind. */
	CHECK(origin_refused(&cfg, NULL, NULL) == NULL);
	CHECK(origin_refused(&cfg, NULL, "http://127.0.0.1") != NULL);
	CHECK(strstr(origin_refused(&cfg, "x.example", NULL), "server_names") != NULL);
	config_free(&cfg);
}

static void
test_a_token_lifts_the_origin_check_and_server_names_checks_host(void)
{
	const char *token[] = { "token = aaaaaaaaaaaaaaaa1", NULL };
	const char *named[] = { "token = aaaaaaaaaaaaaaaa1",
	                        "server_names = postdate.example, [2001:db8::1]", NULL };
	const char *bad[] = { "server_names = a.example:8080", "server_names = a b",
	                      "server_names = a,,b", "server_names = http://a", NULL };
	struct pd_config cfg = config_of(token);
	char err[256];

	CHECK(origin_refused(&cfg, "anything.example", "http://elsewhere.example") == NULL);
	CHECK(origin_refused(&cfg, NULL, NULL) == NULL);
	config_free(&cfg);
	cfg = config_of(named);
	CHECK(origin_refused(&cfg, "POSTDATE.example:8443", "http://elsewhere.example") == NULL);
	CHECK(origin_refused(&cfg, "[2001:db8::1]:80", NULL) == NULL);
	CHECK(origin_refused(&cfg, "localhost", NULL) != NULL);
	CHECK(origin_refused(&cfg, "postdate.example.evil", NULL) != NULL);
	config_free(&cfg);
	for (const char **line = bad; *line != NULL; line++) {
		config_defaults(&cfg);
		if (config_parse_line(&cfg, *line, err, sizeof(err)) == 0) {
			fprintf(stderr, "  accepted %s\n", *line);
			unit_failed_checks++;
		}
		config_free(&cfg);
	}
}

static const struct unit_test tests[] = {
	UNIT(test_without_a_token_only_the_pages_own_origin_is_served),
	UNIT(test_without_a_token_or_server_names_only_loopback_names_are_answered),
	UNIT(test_a_token_lifts_the_origin_check_and_server_names_checks_host),
};

int
main(void)
{
	return unit_run("origin", tests, UNIT_COUNT(tests));
}
