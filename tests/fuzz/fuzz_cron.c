/*
 * fuzz_cron.c: cron expressions (lib/cron.c). The input is the text of an
 * expression; when it parses, its next occurrences are checked in UTC,
 * Europe/Berlin and America/New_York from instants around their DST
 * changes and from one instant derived from the input.
 *
 * Beyond "no crash": a refusal says why; the normalised text parses back
 * to the same expression; next(t) > t, on a whole minute, and fires by the
 * rule checked here independently of cron.c's search (the wall clock reads
 * a matching minute for the first time, or the clocks jump over one);
 * and, when next(t) is within three days, no minute strictly between t
 * and next(t) fires.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"

#define MINUTE 60
#define CHECK_BETWEEN_SECONDS (3 * 86400)
#define CHAIN 3                   /* occurrences followed from each start */

static struct pd_tz *zones[3];    /* NULL (UTC), Berlin, New York: loaded once */

static int32_t
offset(const struct pd_tz *z, int64_t utc)
{
	return z != NULL ? tz_offset_at(z, utc) : 0;
}

/* Whether local (seconds of wall-clock time) is a minute that c allows,
 * by cron's rule for the two day fields. */
static int
local_matches(const struct pd_cron *c, int64_t local)
{
	int64_t day = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
	int64_t second = local - day * 86400;
	int y, m, d, weekday = (int)(((day + 4) % 7 + 7) % 7);
	int dom, dow;

	civil_from_days(day, &y, &m, &d);
	if (second % MINUTE != 0 || !(c->minutes >> (second / 60 % 60) & 1) ||
	    !(c->hours >> (second / 3600) & 1) || !(c->months >> m & 1))
		return 0;
	dom = c->days >> d & 1;
	dow = c->weekdays >> weekday & 1;
	if (!c->days_restricted)
		return dow;
	if (!c->weekdays_restricted)
		return dom;
	return dom || dow;
}

/* Whether the whole minute u (UTC seconds) is an occurrence: its reading
 * matches and no earlier instant read the same, or the clocks jumped
 * forward at u over a matching minute. */
static int
fires(const struct pd_cron *c, const struct pd_tz *z, int64_t u)
{
	int64_t reading = u + offset(z, u), before = u - 1 + offset(z, u - 1), first = u;

	if (local_matches(c, reading)) {
		if (z != NULL)
			tz_local_to_utc(z, reading, &first);
		if (first == u)
			return 1;
	}
	if (before + 1 < reading) {
		for (int64_t l = (before / MINUTE + 1) * MINUTE; l < reading; l += MINUTE)
			if (local_matches(c, l))
				return 1;
	}
	return 0;
}

/* Whether a and b are the same expression, field by field (memcmp would
 * also compare the struct's padding). */
static int
same_cron(const struct pd_cron *a, const struct pd_cron *b)
{
	return a->minutes == b->minutes && a->hours == b->hours && a->days == b->days &&
	       a->months == b->months && a->weekdays == b->weekdays &&
	       a->days_restricted == b->days_restricted &&
	       a->weekdays_restricted == b->weekdays_restricted;
}

static void
check_from(const struct pd_cron *c, const struct pd_tz *z, pd_ms t)
{
	for (int i = 0; i < CHAIN; i++) {
		const char *why = NULL;
		pd_ms next = 0;

		assert(cron_next(c, z, t, &next, &why) == 0);
		assert(next > t);
		assert(next % (MINUTE * PD_MS_PER_S) == 0);
		assert(fires(c, z, next / PD_MS_PER_S));
		if (next - t <= CHECK_BETWEEN_SECONDS * PD_MS_PER_S) {
			int64_t u = t / PD_MS_PER_S / MINUTE * MINUTE + MINUTE;

			for (; u * PD_MS_PER_S < next; u += MINUTE)
				assert(!fires(c, z, u));
		}
		t = next;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const pd_ms starts[] = {
		1774740600000LL,          /* 2026-03-29T23:30Z: Berlin's gap at 01:00Z */
		1792882800000LL,          /* 2026-10-24T23:00Z: Berlin's repeat at 01:00Z */
		1772942400000LL,          /* 2026-03-08T04:00Z: New York's gap at 07:00Z */
		1793509200000LL,          /* 2026-11-01T05:00Z: New York's repeat at 06:00Z */
		1835352000000LL,          /* 2028-02-28T12:00Z: a leap day */
	};
	static int loaded;
	struct pd_cron c, back;
	char text[PD_MAX_CRON + 64], buf[PD_CRON_BUF];
	const char *why = NULL;
	uint64_t hash = 1469598103934665603ULL;

	if (!loaded) {
		zones[0] = NULL;
		assert(tz_load("Europe/Berlin", &zones[1]) == 0);
		assert(tz_load("America/New_York", &zones[2]) == 0);
		loaded = 1;
	}
	/* The parser takes a C string, and the routes cap its length. */
	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (cron_parse(text, &c, &why) != 0) {
		assert(why != NULL && *why != '\0');
		return 0;
	}
	assert(strlen(cron_format(&c, buf)) < PD_CRON_BUF);
	assert(cron_parse(buf, &back, &why) == 0);
	assert(same_cron(&c, &back));

	for (size_t i = 0; i < size; i++)
		hash = (hash ^ data[i]) * 1099511628211ULL;
	for (size_t zi = 0; zi < 3; zi++) {
		for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
			check_from(&c, zones[zi], starts[i]);
		/* 1970 to 2100, at any millisecond. */
		check_from(&c, zones[zi], (pd_ms)(hash % 4102444800000ULL));
	}
	return 0;
}
