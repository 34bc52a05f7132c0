/*
 * target.c: which addresses postdate may deliver to, its guard against
 * server-side request forgery. Strangers type the URLs, so by default
 * nothing on this machine or its private networks is reachable through
 * postdate: loopback, private, link-local, CGNAT, unspecified, multicast,
 * broadcast, reserved, benchmarking and protocol-assignment addresses,
 * and the translation and tunnel prefixes whose IPv4 side is unknown, are
 * refused, in IPv4 and IPv6 and in the IPv6 forms that carry an IPv4
 * address. `allow_targets` opens ranges.
 *
 * Every address is held as 16 bytes, IPv4 as ::ffff:a.b.c.d, so that one
 * comparison serves both families. A URL's host is checked when it is a
 * literal address (in any spelling) or a localhost name; any other name
 * is checked on the address actually connected to, at delivery.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "postdate.h"

static const unsigned char v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* ---- ranges ---- */

static void
map_v4(unsigned char out[16], const unsigned char v4[4])
{
	memcpy(out, v4_mapped_prefix, 12);
	memcpy(out + 12, v4, 4);
}

static int
in_range(const unsigned char addr[16], const unsigned char net[16], int prefix)
{
	int whole = prefix / 8, rest = prefix % 8;

	if (memcmp(addr, net, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((addr[whole] ^ net[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

int
cidr_parse(const char *text, size_t len, struct pd_cidr *out)
{
	char buf[64], *slash, *end;
	unsigned char raw[16];
	long prefix;
	int v6;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash++ = '\0';
	v6 = strchr(buf, ':') != NULL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, raw) != 1)
		return -1;
	prefix = v6 ? 128 : 32;
	if (slash != NULL) {
		if (*slash < '0' || *slash > '9' || strlen(slash) > 3)
			return -1;
		prefix = strtol(slash, &end, 10);
		if (*end != '\0' || prefix > (v6 ? 128 : 32))
			return -1;
	}
	if (v6) {
		memcpy(out->addr, raw, 16);
		out->prefix = (int)prefix;
	} else {
		map_v4(out->addr, raw);
		out->prefix = 96 + (int)prefix;
	}
	return 0;
}

int
cidr_list_parse(const char *text, struct pd_cidr **out, size_t *n)
{
	struct pd_cidr *list = NULL;
	size_t count = 0;
	const char *p = text;

	for (;;) {
		const char *start, *end, *comma;
		struct pd_cidr *grown;

		while (*p == ' ' || *p == '\t')
			p++;
		start = p;
		comma = strchr(p, ',');
		end = comma != NULL ? comma : p + strlen(p);
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (count >= PD_MAX_ALLOW_TARGETS ||
		    (grown = realloc(list, (count + 1) * sizeof(*list))) == NULL) {
			free(list);
			return -1;
		}
		list = grown;
		if (cidr_parse(start, (size_t)(end - start), &list[count]) != 0) {
			free(list);
			return -1;
		}
		count++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*out = list;
	*n = count;
	return 0;
}

/* ---- the policy ---- */

struct forbidden {
	unsigned char net[16];
	int prefix;
	const char *kind;         /* for delivery logs: "a loopback address" */
	const char *refusal;      /* for API errors: a sentence naming the way out */
};

#define V4(a, b, c, d) {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d}
#define KIND(k) k, "the host is " k ", which postdate refuses unless allow_targets includes it"

/* In order: the first match names the kind of address. */
static const struct forbidden forbidden[] = {
	{V4(0, 0, 0, 0), 96 + 8, KIND("an unspecified address (0.0.0.0/8)")},
	{V4(127, 0, 0, 0), 96 + 8, KIND("a loopback address")},
	{V4(10, 0, 0, 0), 96 + 8, KIND("a private address (RFC 1918)")},
	{V4(172, 16, 0, 0), 96 + 12, KIND("a private address (RFC 1918)")},
	{V4(192, 168, 0, 0), 96 + 16, KIND("a private address (RFC 1918)")},
	{V4(169, 254, 0, 0), 96 + 16, KIND("a link-local address")},
	{V4(100, 64, 0, 0), 96 + 10, KIND("a shared (CGNAT) address")},
	{V4(192, 0, 0, 0), 96 + 24, KIND("an IETF protocol assignment (192.0.0.0/24)")},
	{V4(198, 18, 0, 0), 96 + 15, KIND("a benchmarking address (198.18.0.0/15)")},
	{V4(224, 0, 0, 0), 96 + 4, KIND("a multicast address")},
	{V4(240, 0, 0, 0), 96 + 4, KIND("a reserved or broadcast address")},
	{{0}, 128, KIND("an unspecified address (::)")},
	{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, KIND("a loopback address")},
	{{0xfc}, 7, KIND("a unique local (private) address")},
	{{0xfe, 0x80}, 10, KIND("a link-local address")},
	{{0xfe, 0xc0}, 10, KIND("a site-local (private) address")},
	{{0xff}, 8, KIND("a multicast address")},
	/* Translators and tunnels that lead to IPv4 addresses postdate cannot
	 * see, so the whole range: local-use NAT64 (RFC 8215), SIIT's
	 * IPv4-translated ::ffff:0:a.b.c.d (RFC 7915), Teredo (RFC 4380); and
	 * the discard-only prefix (RFC 6666). */
	{{0, 0x64, 0xff, 0x9b, 0, 1}, 48, KIND("a local-use NAT64 address (64:ff9b:1::/48)")},
	{{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 96,
	 KIND("an IPv4-translated (SIIT) address (::ffff:0:0/96)")},
	{{0x20, 0x01, 0, 0}, 32, KIND("a Teredo tunnel address (2001::/32)")},
	{{0x01, 0x00, 0, 0, 0, 0, 0, 0}, 64, KIND("a discard-only address (100::/64)")},
};

static const struct forbidden localhost = {
	V4(127, 0, 0, 1), 128, KIND("a localhost name, always a loopback address")
};

/* IPv6 forms that carry an IPv4 address, which is what gets reached. */
static int
embedded_v4(const unsigned char addr[16], unsigned char out[16])
{
	static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const unsigned char compat[12] = {0};

	if (memcmp(addr, nat64, 12) == 0 || memcmp(addr, compat, 12) == 0) {
		map_v4(out, addr + 12);          /* 64:ff9b::a.b.c.d, ::a.b.c.d */
		return 1;
	}
	if (addr[0] == 0x20 && addr[1] == 0x02) {
		map_v4(out, addr + 2);           /* 6to4: 2002:aabb:ccdd:: */
		return 1;
	}
	return 0;
}

static int
allowed_by(const struct pd_config *cfg, const unsigned char addr[16])
{
	for (size_t i = 0; i < cfg->nallow; i++)
		if (in_range(addr, cfg->allow[i].addr, cfg->allow[i].prefix))
			return 1;
	return 0;
}

static const struct forbidden *
forbidden_range(const unsigned char addr[16])
{
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
		if (in_range(addr, forbidden[i].net, forbidden[i].prefix))
			return &forbidden[i];
	return NULL;
}

/* The forbidden range addr is in, or NULL when it may be delivered to. */
static const struct forbidden *
policy_check(const struct pd_config *cfg, const unsigned char addr[16])
{
	const struct forbidden *f;
	unsigned char inner[16];

	if (allowed_by(cfg, addr))
		return NULL;
	if ((f = forbidden_range(addr)) != NULL)
		return f;
	if (embedded_v4(addr, inner) && !allowed_by(cfg, inner))
		return forbidden_range(inner);
	return NULL;
}

const char *
target_address_refused(const struct pd_config *cfg, const struct sockaddr *sa)
{
	const struct forbidden *f;
	unsigned char addr[16];

	if (sa->sa_family == AF_INET)
		map_v4(addr, (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
	else if (sa->sa_family == AF_INET6)
		memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else
		return "not an internet address";
	f = policy_check(cfg, addr);
	return f != NULL ? f->kind : NULL;
}

/* "localhost", "x.localhost" (RFC 6761), with or without a final dot. */
static int
is_localhost_name(const char *host, size_t len)
{
	static const char name[] = "localhost";
	size_t n = sizeof(name) - 1;

	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len < n || strncasecmp(host + len - n, name, n) != 0)
		return 0;
	return len == n || host[len - n - 1] == '.';
}

int
target_host_allowed(const struct pd_config *cfg, const char *host, const char **why)
{
	const struct forbidden *f = NULL;
	char buf[64];
	unsigned char addr[16];
	struct in_addr v4;
	size_t len = strlen(host);

	if (is_localhost_name(host, len)) {
		if (policy_check(cfg, localhost.net) != NULL)
			f = &localhost;
	} else if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
		/* Brackets hold an address, never a name, however long the
		 * zone id after it: "fe80::1%eth0". */
		size_t n = strcspn(host + 1, "%]");

		if (n >= sizeof(buf)) {
			*why = "the host is not a valid IPv6 address";
			return -1;
		}
		memcpy(buf, host + 1, n);
		buf[n] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1) {
			*why = "the host is not a valid IPv6 address";
			return -1;
		}
		f = policy_check(cfg, addr);
	} else {
		/* inet_aton takes every spelling the C library's resolver takes:
		 * 2130706433, 0177.1, 0x7f.0.0.1 are all 127.0.0.1, and so is
		 * 0177.1 after any number of zeros: no length is too long. */
		char *copy = strndup(host, len > 0 && host[len - 1] == '.' ? len - 1 : len);
		int is_v4;

		if (copy == NULL) {
			*why = "out of memory";
			return -1;
		}
		is_v4 = inet_aton(copy, &v4) != 0;
		free(copy);
		if (is_v4) {
			map_v4(addr, (const unsigned char *)&v4);
			f = policy_check(cfg, addr);
		}
	}
	if (f == NULL)
		return 0;
	*why = f->refusal;
	return -1;
}

/* ---- the port policy ---- */

/* A port, 1 to 65535, digits only; the number of bytes read, 0 if none. */
static size_t
port_parse(const char *p, unsigned *out)
{
	unsigned v = 0;
	size_t n = 0;

	while (p[n] >= '0' && p[n] <= '9' && n < 5)
		v = v * 10 + (unsigned)(p[n++] - '0');
	if (n == 0 || (p[n] >= '0' && p[n] <= '9') || v < 1 || v > 65535)
		return 0;
	*out = v;
	return n;
}

int
port_list_parse(const char *text, struct pd_port_range *out, size_t *n)
{
	struct pd_port_range list[PD_MAX_ALLOW_PORTS];
	size_t count = 0, used;
	const char *p = text;

	for (;;) {
		struct pd_port_range r;

		p += strspn(p, " \t");
		if (count == PD_MAX_ALLOW_PORTS || (used = port_parse(p, &r.lo)) == 0)
			return -1;
		p += used;
		r.hi = r.lo;
		if (*p == '-') {
			p++;
			if ((used = port_parse(p, &r.hi)) == 0 || r.hi < r.lo)
				return -1;
			p += used;
		}
		list[count++] = r;
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		if (*p++ != ',')
			return -1;
	}
	memcpy(out, list, count * sizeof(*list));
	*n = count;
	return 0;
}

const char *
target_port_refused(const struct pd_config *cfg, unsigned port)
{
	for (size_t i = 0; i < cfg->nports; i++)
		if (port >= cfg->ports[i].lo && port <= cfg->ports[i].hi)
			return NULL;
	return "a port outside allow_ports";
}
