/*
 * test_target.c: the target policy (the SSRF guard): which URL hosts are
 * refused at schedule time, in every spelling, and which connected
 * addresses are refused at delivery, with allow_targets opening ranges.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "unit.h"

/* A configuration with only allow_targets set ("" for none). */
static struct pd_config
policy(const char *allow)
{
	struct pd_config cfg;

	config_defaults(&cfg);
	if (*allow != '\0' && cidr_list_parse(allow, &cfg.allow, &cfg.nallow) != 0)
		abort();
	return cfg;
}

/* Whether url is accepted for scheduling under allow. */
static int
url_ok(const char *allow, const char *url)
{
	struct pd_config cfg = policy(allow);
	const char *why = NULL;
	int rc = url_acceptable(&cfg, url, strlen(url), &why);

	free(cfg.allow);
	return rc == 0;
}

/* Whether connecting to the literal address is allowed under allow. */
static int
address_ok(const char *allow, const char *text)
{
	struct pd_config cfg = policy(allow);
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	const char *kind;

	if (inet_pton(AF_INET, text, &v4.sin_addr) == 1)
		kind = target_address_refused(&cfg, (struct sockaddr *)&v4);
	else if (inet_pton(AF_INET6, text, &v6.sin6_addr) == 1)
		kind = target_address_refused(&cfg, (struct sockaddr *)&v6);
	else
		abort();
	free(cfg.allow);
	return kind == NULL;
}

static void
test_public_addresses_and_names_are_accepted(void)
{
	CHECK(url_ok("", "https://example.com/hook"));
	CHECK(url_ok("", "http://93.184.215.14:8080/x"));
	CHECK(url_ok("", "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/"));
	CHECK(url_ok("", "http://8.8.8.8/"));
	CHECK(url_ok("", "http://172.32.0.1/"));      /* just past 172.16/12 */
	CHECK(url_ok("", "http://100.128.0.1/"));     /* just past 100.64/10 */
	CHECK(url_ok("", "http://notlocalhost/"));
	CHECK(url_ok("", "http://localhost.example.com/"));
	CHECK(address_ok("", "8.8.8.8"));
	CHECK(address_ok("", "2001:4860:4860::8888"));
}

static void
test_every_forbidden_range_is_refused_at_schedule(void)
{
	static const char *urls[] = {
		"http://127.0.0.1/", "http://127.255.255.254:9/", "http://10.1.2.3/",
		"http://172.16.0.1/", "http://172.31.255.255/", "http://192.168.1.1/",
		"http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/",
		"http://100.127.255.255/", "http://0.0.0.0/", "http://224.0.0.1/",
		"http://239.255.255.250/", "http://255.255.255.255/", "http://240.0.0.1/",
		"http://[::1]/", "http://[::]/", "http://[fc00::1]/", "http://[fd12:3456::1]/",
		"http://[fe80::1]/", "http://[fe80::1%25eth0]/", "http://[ff02::1]/",
		"http://[fec0::1]/",
	};

	for (size_t i = 0; i < UNIT_COUNT(urls); i++)
		if (url_ok("", urls[i])) {
			fprintf(stderr, "  accepted %s\n", urls[i]);
			unit_failed_checks++;
		}
}

static void
test_other_spellings_of_loopback_are_refused(void)
{
	static const char *urls[] = {
		"http://2130706433/", "http://0177.1/", "http://0x7f.1/", "http://0x7f000001/",
		"http://127.1/", "http://017700000001/", "http://127.0.0.1./",
		"http://%31%32%37.0.0.1/", "http://localhost/", "http://LOCALHOST:8080/",
		"http://api.localhost/", "http://localhost./", "http://[::ffff:127.0.0.1]/",
		"http://[::ffff:7f00:1]/", "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.1]/",
		"http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::]/",
	};

	for (size_t i = 0; i < UNIT_COUNT(urls); i++)
		if (url_ok("", urls[i])) {
			fprintf(stderr, "  accepted %s\n", urls[i]);
			unit_failed_checks++;
		}
}

static void
test_refusal_names_the_kind_and_the_way_out(void)
{
	struct pd_config cfg = policy("");
	const char *why = NULL;

	CHECK_INT(target_host_allowed(&cfg, "169.254.169.254", &why), -1);
	CHECK(why != NULL && strstr(why, "link-local") != NULL);
	CHECK(why != NULL && strstr(why, "allow_targets") != NULL);
	CHECK_INT(target_host_allowed(&cfg, "[::1]", &why), -1);
	CHECK(strstr(why, "loopback") != NULL);
	CHECK_INT(target_host_allowed(&cfg, "localhost", &why), -1);
	CHECK(strstr(why, "localhost") != NULL);
	CHECK_INT(target_host_allowed(&cfg, "[not:an:address::x]", &why), -1);
}

/* Found by tests/fuzz/fuzz_url_policy.c: a host of 64 bytes or more was
 * let through as a name, though it may spell an address: loopback with
 * many leading zeros and a final dot (which libcurl leaves as written),
 * or an IPv6 address with a long zone id. */
static void
test_long_hosts_are_checked_as_addresses(void)
{
	struct pd_config cfg = policy("");
	char host[128], url[160];
	const char *why = NULL;

	snprintf(host, sizeof(host), "%0*d177.1.", 70, 0);
	snprintf(url, sizeof(url), "http://%s/", host);
	CHECK(!url_ok("", url));
	CHECK(url_ok("127.0.0.0/8", url));
	CHECK_INT(target_host_allowed(&cfg, host, &why), -1);
	CHECK(why != NULL && strstr(why, "loopback") != NULL);
	snprintf(host, sizeof(host), "%0*d.example.", 70, 0);
	CHECK_INT(target_host_allowed(&cfg, host, &why), 0);

	snprintf(host, sizeof(host), "[::1%%%0*d]", 70, 0);
	CHECK_INT(target_host_allowed(&cfg, host, &why), -1);
	CHECK(why != NULL && strstr(why, "loopback") != NULL);
	snprintf(host, sizeof(host), "[%0*d]", 70, 0);
	why = NULL;
	CHECK_INT(target_host_allowed(&cfg, host, &why), -1);
	CHECK(why != NULL && strstr(why, "not a valid IPv6 address") != NULL);
}

static void
test_allow_targets_opens_exactly_its_ranges(void)
{
	CHECK(url_ok("127.0.0.0/8, ::1", "http://127.0.0.1:8080/"));
	CHECK(url_ok("127.0.0.0/8, ::1", "http://2130706433/"));
	CHECK(url_ok("127.0.0.0/8, ::1", "http://[::1]/"));
	CHECK(url_ok("127.0.0.0/8, ::1", "http://localhost/"));
	CHECK(url_ok("127.0.0.0/8, ::1", "http://[::ffff:127.0.0.1]/"));
	CHECK(!url_ok("127.0.0.0/8, ::1", "http://10.0.0.1/"));
	CHECK(!url_ok("127.0.0.0/8, ::1", "http://169.254.169.254/"));
	CHECK(url_ok("10.1.0.0/16", "http://10.1.200.3/"));
	CHECK(!url_ok("10.1.0.0/16", "http://10.2.0.1/"));
	CHECK(url_ok("172.16.5.7", "http://172.16.5.7/"));
	CHECK(!url_ok("172.16.5.7", "http://172.16.5.8/"));
	CHECK(address_ok("127.0.0.0/8", "127.0.0.1"));
	CHECK(address_ok("127.0.0.0/8", "::ffff:127.0.0.1"));
	CHECK(!address_ok("127.0.0.0/8", "::1"));
	CHECK(address_ok("fd00::/8", "fd00::5"));
}

static void
test_connected_addresses_are_checked_in_both_families(void)
{
	CHECK(!address_ok("", "127.0.0.1"));
	CHECK(!address_ok("", "10.0.0.1"));
	CHECK(!address_ok("", "169.254.169.254"));
	CHECK(!address_ok("", "100.64.1.1"));
	CHECK(!address_ok("", "0.0.0.0"));
	CHECK(!address_ok("", "::1"));
	CHECK(!address_ok("", "::"));
	CHECK(!address_ok("", "::ffff:192.168.0.1"));
	CHECK(!address_ok("", "64:ff9b::a00:1"));
	CHECK(!address_ok("", "fe80::1234"));
	CHECK(!address_ok("", "fd00::1"));
	CHECK(address_ok("", "::ffff:8.8.8.8"));
	CHECK(address_ok("", "64:ff9b::808:808"));
}

/* Ranges a review found missing: local-use NAT64 (RFC 8215), SIIT's
 * IPv4-translated form (RFC 6052/7915, ::ffff:0:a.b.c.d), IETF protocol
 * assignments (192.0.0.0/24), benchmarking (198.18.0.0/15), discard-only
 * (100::/64) and Teredo (2001::/32), which tunnels to an IPv4 address. */
static void
test_translation_benchmark_and_tunnel_ranges_are_refused(void)
{
	static const char *addresses[] = {
		"64:ff9b:1::1", "64:ff9b:1:ffff::7f00:1", "::ffff:0:7f00:1", "::ffff:0:808:808",
		"192.0.0.1", "192.0.0.255", "198.18.0.1", "198.19.255.255", "100::1",
		"100::ffff:ffff:ffff:ffff", "2001::1", "2001:0:ffff::1",
	};
	static const char *urls[] = {
		"http://[64:ff9b:1::a00:1]/", "http://[::ffff:0:a00:1]/", "http://192.0.0.8/",
		"http://198.18.1.1/", "http://[100::5]/", "http://[2001:0:4136:e378::1]/",
	};

	for (size_t i = 0; i < UNIT_COUNT(addresses); i++)
		if (address_ok("", addresses[i])) {
			fprintf(stderr, "  connected to %s\n", addresses[i]);
			unit_failed_checks++;
		}
	for (size_t i = 0; i < UNIT_COUNT(urls); i++)
		if (url_ok("", urls[i])) {
			fprintf(stderr, "  accepted %s\n", urls[i]);
			unit_failed_checks++;
		}
	/* Their neighbours stay open, and allow_targets opens them. */
	CHECK(address_ok("", "192.0.1.1"));
	CHECK(address_ok("", "198.20.0.1"));
	CHECK(address_ok("", "100:0:0:1::1"));
	CHECK(address_ok("", "2001:4860:4860::8888"));
	CHECK(address_ok("", "64:ff9b:2::1"));
	CHECK(address_ok("198.18.0.0/15", "198.18.0.1"));
	CHECK(address_ok("2001::/32", "2001::1"));
}

/* Whether url is accepted under the default ranges and allow_ports ports
 * (NULL: the default ports). */
static int
url_ok_ports(const char *ports, const char *url)
{
	struct pd_config cfg = policy("");
	const char *why = NULL;
	char err[256];
	char line[256];
	int rc;

	if (ports != NULL) {
		snprintf(line, sizeof(line), "allow_ports = %s", ports);
		if (config_parse_line(&cfg, line, err, sizeof(err)) != 0)
			abort();
	}
	rc = url_acceptable(&cfg, url, strlen(url), &why);
	if (rc != 0 && strstr(why, "port") == NULL && strstr(why, "allow_targets") == NULL)
		abort();
	free(cfg.allow);
	return rc == 0;
}

/* A token holder must not make postdate speak HTTP to SMTP, Redis or SSH
 * on a public host: by default only 80, 443 and 1024-65535. */
static void
test_ports_outside_allow_ports_are_refused(void)
{
	struct pd_config cfg = policy("");
	const char *why = NULL;

	CHECK(url_ok_ports(NULL, "http://example.com/"));
	CHECK(url_ok_ports(NULL, "https://example.com/"));
	CHECK(url_ok_ports(NULL, "http://example.com:443/"));
	CHECK(url_ok_ports(NULL, "https://example.com:80/"));
	CHECK(url_ok_ports(NULL, "http://example.com:1024/"));
	CHECK(url_ok_ports(NULL, "http://example.com:65535/"));
	CHECK(!url_ok_ports(NULL, "http://example.com:25/"));
	CHECK(!url_ok_ports(NULL, "http://example.com:22/"));
	CHECK(!url_ok_ports(NULL, "http://8.8.8.8:1023/"));
	/* Redis's 6379 is above 1024: a list of only the web ports closes it. */
	CHECK(!url_ok_ports("80, 443", "http://example.com:6379/"));
	CHECK(url_ok_ports("80, 443", "https://example.com/"));
	CHECK(url_ok_ports("25, 8000-8100", "http://example.com:25/"));
	CHECK(url_ok_ports("25, 8000-8100", "http://example.com:8050/"));
	CHECK(!url_ok_ports("25, 8000-8100", "http://example.com:8101/"));
	CHECK(!url_ok_ports("25, 8000-8100", "http://example.com/"));

	CHECK_INT(target_host_allowed(&cfg, "example.com", &why), 0);
	why = NULL;
	CHECK_INT(url_acceptable(&cfg, "http://example.com:25/", 22, &why), -1);
	CHECK(why != NULL && strstr(why, "25") != NULL && strstr(why, "allow_ports") != NULL);
	/* The port connected to is checked again at delivery. */
	CHECK(target_port_refused(&cfg, 25) != NULL);
	CHECK(target_port_refused(&cfg, 443) == NULL);
	CHECK(target_port_refused(&cfg, 8080) == NULL);
	free(cfg.allow);
}

static void
test_cidr_lists_parse_and_reject(void)
{
	struct pd_cidr *list = NULL;
	size_t n = 0;

	CHECK_INT(cidr_list_parse(" 10.0.0.0/8 ,::1,192.168.0.0/24", &list, &n), 0);
	CHECK_INT(n, 3);
	CHECK_INT(list[0].prefix, 104);
	CHECK_INT(list[1].prefix, 128);
	CHECK_INT(list[2].prefix, 120);
	free(list);
	CHECK_INT(cidr_list_parse("10.0.0.0/33", &list, &n), -1);
	CHECK_INT(cidr_list_parse("::/129", &list, &n), -1);
	CHECK_INT(cidr_list_parse("10.0.0.0/", &list, &n), -1);
	CHECK_INT(cidr_list_parse("10.0.0.0/8x", &list, &n), -1);
	CHECK_INT(cidr_list_parse("", &list, &n), -1);
	CHECK_INT(cidr_list_parse("10.0.0.0/8,,::1", &list, &n), -1);
	CHECK_INT(cidr_list_parse("10.1", &list, &n), -1);      /* inet_pton: 4 parts only */
}

static const struct unit_test tests[] = {
	UNIT(test_public_addresses_and_names_are_accepted),
	UNIT(test_every_forbidden_range_is_refused_at_schedule),
	UNIT(test_other_spellings_of_loopback_are_refused),
	UNIT(test_refusal_names_the_kind_and_the_way_out),
	UNIT(test_long_hosts_are_checked_as_addresses),
	UNIT(test_allow_targets_opens_exactly_its_ranges),
	UNIT(test_connected_addresses_are_checked_in_both_families),
	UNIT(test_translation_benchmark_and_tunnel_ranges_are_refused),
	UNIT(test_ports_outside_allow_ports_are_refused),
	UNIT(test_cidr_lists_parse_and_reject),
};

int
main(void)
{
	return unit_run("target", tests, UNIT_COUNT(tests));
}
