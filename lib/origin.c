/*
 * origin.c: whom a request is addressed to (Host) and which page sent it
 * (Origin). A browser lets any page POST a form to any address, and a name
 * that a page's owner rebinds to 127.0.0.1 makes the page's requests
 * same-origin with a local postdate; a token stops both, since neither page
 * can know it. Without one, postdate answers only the names it is known by
 * (server_names, by default this machine's loopback names) and refuses a
 * request whose Origin is not the page's own.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "postdate.h"

/* The names a server without a token and without server_names answers to:
 * what a browser on this machine uses to reach it, and nothing a stranger's
 * DNS can point at it. */
static const char *const loopback_names[] = { "localhost", "127.0.0.1", "[::1]" };

/* Splits "host[:port]" or "[v6][:port]" (len bytes) into its host and its
 * port (0 when none is written). -1 when malformed. */
static int
authority_split(const char *text, size_t len, size_t *hostlen, unsigned *port)
{
	size_t h;

	if (len > 0 && text[0] == '[') {
		const char *close = memchr(text, ']', len);

		if (close == NULL)
			return -1;
		h = (size_t)(close - text) + 1;
	} else {
		const char *colon = memchr(text, ':', len);

		h = colon != NULL ? (size_t)(colon - text) : len;
	}
	if (h == 0)
		return -1;
	*hostlen = h;
	*port = 0;
	if (h == len)
		return 0;
	if (text[h] != ':' || h + 1 == len || len - h - 1 > 5)
		return -1;
	for (size_t i = h + 1; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		*port = *port * 10 + (unsigned)(text[i] - '0');
	}
	return *port >= 1 && *port <= 65535 ? 0 : -1;
}

static int
name_is(const char *name, const char *host, size_t hostlen)
{
	/* A final dot names the same host. */
	if (hostlen > 1 && host[hostlen - 1] == '.')
		hostlen--;
	return strlen(name) == hostlen && strncasecmp(name, host, hostlen) == 0;
}

static int
host_known(const struct pd_config *cfg, const char *host, size_t hostlen)
{
	if (cfg->nserver_names == 0) {
		for (size_t i = 0; i < sizeof(loopback_names) / sizeof(loopback_names[0]); i++)
			if (name_is(loopback_names[i], host, hostlen))
				return 1;
		return 0;
	}
	for (size_t i = 0; i < cfg->nserver_names; i++)
		if (name_is(cfg->server_names[i], host, hostlen))
			return 1;
	return 0;
}

/* Whether origin ("scheme://host[:port]") is the page the Host header
 * (host, hostlen, port as written) serves. The ports are compared when
 * Host has one: Debian's nginx passes HTTP_HOST as $host, without it. */
static int
origin_is_own(const char *origin, const char *host, size_t hostlen, unsigned port)
{
	unsigned default_port, origin_port;
	const char *authority;
	size_t origin_hostlen;

	if (strncasecmp(origin, "http://", 7) == 0) {
		default_port = 80;
		authority = origin + 7;
	} else if (strncasecmp(origin, "https://", 8) == 0) {
		default_port = 443;
		authority = origin + 8;
	} else
		return 0;           /* "null" (a sandboxed page, a file) and anything else */
	if (authority_split(authority, strlen(authority), &origin_hostlen, &origin_port) != 0)
		return 0;
	return origin_hostlen == hostlen && strncasecmp(authority, host, hostlen) == 0 &&
	       (port == 0 || (origin_port != 0 ? origin_port : default_port) == port);
}

const char *
origin_refused(const struct pd_config *cfg, const char *host, const char *origin)
{
	size_t hostlen = 0;
	unsigned port = 0;
	int checks_host = cfg->ntokens == 0 || cfg->nserver_names > 0;
	int host_ok = host != NULL && authority_split(host, strlen(host), &hostlen, &port) == 0;

	/* No Host at all is no browser (every browser sends one): a plain CGI
	 * run, an HTTP/1.0 client. An Origin then has nothing to match. */
	if (checks_host && host != NULL && (!host_ok || !host_known(cfg, host, hostlen)))
		return "the Host header names no server this postdate answers for: list the "
		       "name in server_names";
	if (cfg->ntokens == 0 && origin != NULL &&
	    (!host_ok || !origin_is_own(origin, host, hostlen, port)))
		return "a request from another origin (a page elsewhere) is refused while no "
		       "token is configured";
	return NULL;
}

int
server_name_valid(const char *name, size_t len)
{
	size_t hostlen;
	unsigned port;

	if (len == 0 || len > 255 || authority_split(name, len, &hostlen, &port) != 0 ||
	    hostlen != len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    c != '.' && c != '-' && c != '_' && c != '[' && c != ']' && c != ':')
			return 0;
	}
	return 1;
}
