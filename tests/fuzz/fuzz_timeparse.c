/*
 * fuzz_timeparse.c: the time and duration parsers (lib/timeparse.c). The
 * input is "TEXT" or "TEXT\nTZ"; TEXT goes to every parser, TZ to the
 * local form and timeparse_at.
 *
 * Beyond "no crash": an RFC 3339 time within the years 0000-9999, printed
 * by time_format and parsed again, is the same instant; timeparse_at agrees
 * with the parser its shape picks; a duration is 0 to ten years; Unix
 * seconds are whole seconds, not negative; a refusal always says why.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"

#define MIN_MS (-62167219200000LL)   /* 0000-01-01T00:00:00Z */
#define MAX_MS (253402300799999LL)   /* 9999-12-31T23:59:59.999Z */
#define TEN_YEARS_MS (3650LL * 86400 * 1000)

/* A parser's result: 0 with *out set, or -1 with *why set. */
static int
checked(int rc, const char *why)
{
	assert(rc == 0 || rc == -1);
	assert(rc == 0 || (why != NULL && *why != '\0'));
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *tz = NULL, *nl, buf[PD_TIME_BUF];
	const char *why;
	pd_ms t, t2, at;
	int rc;

	/* The parsers take C strings: the request fields are NUL-checked first. */
	if (size > 256)
		return 0;
	text = malloc(size + 1);
	assert(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	if ((nl = strchr(text, '\n')) != NULL) {
		*nl = '\0';
		tz = nl + 1;
	}

	why = NULL;
	if (checked(timeparse_rfc3339(text, &t, &why), why) == 0 && t >= MIN_MS && t <= MAX_MS) {
		why = NULL;
		assert(timeparse_rfc3339(time_format(t, buf), &t2, &why) == 0);
		assert(t2 == t);
	}

	why = NULL;
	if (checked(timeparse_unix(text, &t, &why), why) == 0)
		assert(t >= 0 && t % 1000 == 0);

	why = NULL;
	if (checked(timeparse_duration(text, &t, &why), why) == 0)
		assert(t >= 0 && t <= TEN_YEARS_MS);

	why = NULL;
	(void)checked(timeparse_local(text, tz, &t, &why), why);

	why = NULL;
	rc = checked(timeparse_at(text, tz, &at, &why), why);
	if (rc == 0 && (tz == NULL || *tz == '\0')) {
		/* Without a zone, `at` is one of the three forms exactly. */
		int ok_unix = timeparse_unix(text, &t, &why) == 0;
		int ok_rfc = timeparse_rfc3339(text, &t2, &why) == 0;

		if (ok_unix)
			assert(at == t);
		else if (ok_rfc)
			assert(at == t2);
		else
			assert(timeparse_local(text, NULL, &t, &why) == 0 && at == t);
	}
	if (tz != NULL)
		(void)timezone_exists(tz);
	free(text);
	return 0;
}
