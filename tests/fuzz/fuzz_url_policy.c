/*
 * fuzz_url_policy.c: the target policy as a schedule request meets it:
 * url_acceptable() (lib/message.c) on the input as a URL, and
 * target_host_allowed() (lib/target.c) on it as a bare host, each under a
 * configuration with no allow_targets and one with "127.0.0.0/8, ::1".
 *
 * Beyond "no crash": an accepted URL never has a forbidden literal host:
 * its host, read as a numeric address the way the C library's resolver
 * reads it (so 2130706433, 0177.1 and [::ffff:7f00:1] count), is never one
 * the delivery-time check target_address_refused() would refuse, and never
 * loopback, 0.0.0.0 or 169.254.169.254 without allow_targets; a localhost
 * name is never accepted without allow_targets; opening ranges never
 * refuses what was accepted without them; a refusal always says why.
 */
#include <assert.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "postdate.h"

static struct pd_config no_allow, loopback_allow;

static void
setup(void)
{
	char err[256];

	config_defaults(&no_allow);
	config_defaults(&loopback_allow);
	if (config_parse_line(&loopback_allow, "allow_targets = 127.0.0.0/8, ::1", err,
	                      sizeof(err)) != 0)
		abort();
}

/* "localhost" or "*.localhost", any case, with or without a final dot. */
static int
names_localhost(const char *host)
{
	size_t len = strlen(host);

	if (len > 0 && host[len - 1] == '.')
		len--;
	return (len == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	    (len > 10 && strncasecmp(host + len - 10, ".localhost", 10) == 0);
}

/* Checks host (as libcurl gives it: IPv6 only in brackets) as a numeric
 * address, when it is one; cfg accepted it. */
static void
check_literal(const struct pd_config *cfg, const char *host)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_family = AF_INET };
	struct addrinfo *res = NULL;
	char buf[300];
	size_t len = strlen(host);

	if (len == 0 || len >= sizeof(buf))
		return;
	if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
		hints.ai_family = AF_INET6;
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		buf[strcspn(buf, "%")] = '\0';
	} else {
		memcpy(buf, host, len + 1);
		if (buf[len - 1] == '.')
			buf[len - 1] = '\0';
	}
	if (getaddrinfo(buf, NULL, &hints, &res) != 0)
		return;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		assert(target_address_refused(cfg, ai->ai_addr) == NULL);
		if (cfg->nallow == 0 && ai->ai_family == AF_INET) {
			const unsigned char *a = (const unsigned char *)
			    &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;

			assert(a[0] != 127 && a[0] != 0);
			assert(!(a[0] == 169 && a[1] == 254 && a[2] == 169 && a[3] == 254));
		}
		if (cfg->nallow == 0 && ai->ai_family == AF_INET6) {
			static const unsigned char loop6[16] = { [15] = 1 };

			assert(memcmp(&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
			              loop6, 16) != 0);
		}
	}
	freeaddrinfo(res);
}

/* Whether cfg accepts url; when it does, checks what it accepted. */
static int
url_check(const struct pd_config *cfg, const char *url, size_t len)
{
	const char *why = NULL;
	CURLU *u;
	char *host = NULL, *port = NULL;

	if (url_acceptable(cfg, url, len, &why) != 0) {
		assert(why != NULL && *why != '\0');
		return 0;
	}
	u = curl_url();
	assert(u != NULL);
	assert(curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK);
	assert(curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK);
	assert(cfg->nallow > 0 || !names_localhost(host));
	check_literal(cfg, host);
	/* The port it will connect to is one allow_ports holds. */
	assert(curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK);
	assert(target_port_refused(cfg, (unsigned)strtoul(port, NULL, 10)) == NULL);
	curl_free(port);
	curl_free(host);
	curl_url_cleanup(u);
	return 1;
}

/* The same for a bare host given to target_host_allowed. */
static int
host_check(const struct pd_config *cfg, const char *host)
{
	const char *why = NULL;

	if (target_host_allowed(cfg, host, &why) != 0) {
		assert(why != NULL && *why != '\0');
		return 0;
	}
	assert(cfg->nallow > 0 || !names_localhost(host));
	check_literal(cfg, host);
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char *text;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size > PD_MAX_URL + 1)
		return 0;
	/* url_acceptable refuses NUL bytes itself; curl needs a C string. */
	text = malloc(size + 1);
	assert(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	if (memchr(text, '\0', size) == NULL) {
		if (url_check(&no_allow, text, size))
			assert(url_check(&loopback_allow, text, size));
		else
			(void)url_check(&loopback_allow, text, size);
	} else {
		const char *why;

		assert(url_acceptable(&no_allow, text, size, &why) != 0);
	}
	if (host_check(&no_allow, text))
		assert(host_check(&loopback_allow, text));
	else
		(void)host_check(&loopback_allow, text);
	free(text);
	return 0;
}
