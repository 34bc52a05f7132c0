/*
 * fuzz_cidr_list.c: cidr_list_parse() (lib/target.c), the allow_targets
 * value, on arbitrary text.
 *
 * Beyond "no crash": an accepted list has 1 to PD_MAX_ALLOW_TARGETS ranges
 * with prefixes from 0 to 128 (IPv4 held as ::ffff:a.b.c.d/96+n), and
 * each range, printed back as "address/prefix", parses to the same range.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"

static const unsigned char v4_mapped[12] = { [10] = 0xff, [11] = 0xff };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pd_cidr *list = NULL;
	size_t n = 0;
	char *text;

	if (size > 8192)
		return 0;
	text = malloc(size + 1);
	assert(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	if (cidr_list_parse(text, &list, &n) != 0) {
		free(text);
		return 0;
	}
	assert(n >= 1 && n <= PD_MAX_ALLOW_TARGETS);
	for (size_t i = 0; i < n; i++) {
		char addr[INET6_ADDRSTRLEN], range[INET6_ADDRSTRLEN + 8];
		struct pd_cidr again;
		int v4 = memcmp(list[i].addr, v4_mapped, 12) == 0 && list[i].prefix >= 96;

		assert(list[i].prefix >= 0 && list[i].prefix <= 128);
		/* An IPv6 range may be written ::ffff:a.b.c.d/n; print it as such. */
		if (v4) {
			assert(inet_ntop(AF_INET, list[i].addr + 12, addr, sizeof(addr)) != NULL);
			snprintf(range, sizeof(range), "%s/%d", addr, list[i].prefix - 96);
		} else {
			assert(inet_ntop(AF_INET6, list[i].addr, addr, sizeof(addr)) != NULL);
			snprintf(range, sizeof(range), "%s/%d", addr, list[i].prefix);
		}
		assert(cidr_parse(range, strlen(range), &again) == 0);
		assert(again.prefix == list[i].prefix);
		assert(memcmp(again.addr, list[i].addr, 16) == 0);
	}
	free(list);
	free(text);
	return 0;
}
