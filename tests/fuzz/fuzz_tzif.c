/*
 * fuzz_tzif.c: the TZif reader (lib/tz.c). The input is a TZif file, or
 * "F" and a footer TZ string, which is wrapped in a minimal version 2 file
 * with no transitions so that the POSIX TZ parser gets most of the work.
 *
 * Beyond "no crash": every offset is within +-26 hours; a local time that
 * maps to an instant reads back as that local time there; a skipped local
 * time is not the reading of the instant given as the gap's end.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"

#define MAX_OFFSET (26 * 3600)

/* A version 2 file with no transitions, one UTC type, and footer text. */
static unsigned char *
wrap_footer(const uint8_t *text, size_t len, size_t *outlen)
{
	static const unsigned char block[] = {
		'T', 'Z', 'i', 'f', '2', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4,
		0, 0, 0, 0, 0, 0, 'U', 'T', 'C', 0,
	};
	unsigned char *p = malloc(2 * sizeof(block) + len + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, block, sizeof(block));
	memcpy(p + sizeof(block), block, sizeof(block));
	p[2 * sizeof(block)] = '\n';
	memcpy(p + 2 * sizeof(block) + 1, text, len);
	p[2 * sizeof(block) + 1 + len] = '\n';
	*outlen = 2 * sizeof(block) + len + 2;
	return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t probes[] = {
		-2208988800LL, 0, 1774746000LL, 1792890000LL, 4109878800LL, 16738272000LL,
		-62167219200LL, 253402300799LL,
	};
	unsigned char *file = NULL;
	size_t len = size;
	struct pd_tz *z;

	if (size > 0 && data[0] == 'F') {
		if ((file = wrap_footer(data + 1, size - 1, &len)) == NULL)
			return 0;
	}
	if (tz_parse(file != NULL ? file : data, len, &z) != 0) {
		free(file);
		return 0;
	}
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		int64_t utc;
		int32_t off = tz_offset_at(z, probes[i]);
		enum tz_local kind;

		assert(off >= -MAX_OFFSET && off <= MAX_OFFSET);
		kind = tz_local_to_utc(z, probes[i], &utc);
		if (kind == TZ_LOCAL_SKIPPED)
			assert(utc + tz_offset_at(z, utc) != probes[i]);
		else
			assert(utc + tz_offset_at(z, utc) == probes[i]);
	}
	tz_free(z);
	free(file);
	return 0;
}
