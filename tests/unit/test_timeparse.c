/* test_timeparse.c: times and durations. Expected instants were computed
 * independently (Python's datetime and zoneinfo). */
#include <stdlib.h>

#include "postdate.h"
#include "unit.h"

#define T_2026_11_22_1330Z 1795354200000LL

static pd_ms
at_ok(const char *text, const char *tz)
{
	const char *why = NULL;
	pd_ms t = -1;

	if (timeparse_at(text, tz, &t, &why) != 0) {
		fprintf(stderr, "  \"%s\" (tz %s) refused: %s\n", text, tz ? tz : "-", why);
		unit_failed_checks++;
	}
	return t;
}

static int
at_refused(const char *text, const char *tz)
{
	const char *why = NULL;
	pd_ms t;
	int rc = timeparse_at(text, tz, &t, &why);

	if (rc == 0)
		fprintf(stderr, "  \"%s\" accepted as %lld\n", text, (long long)t);
	return rc == -1 && why != NULL && *why != '\0';
}

static void
test_rfc3339_z_and_offsets_convert_to_utc(void)
{
	CHECK_INT(at_ok("2026-11-22T13:30:00Z", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22t13:30:00z", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T14:30:00+01:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T08:00:00-05:30", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T13:30:00+00:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22 13:30:00Z", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-23T00:30:00+11:00", NULL), T_2026_11_22_1330Z);
}

static void
test_rfc3339_fractions_truncate_to_ms(void)
{
	CHECK_INT(at_ok("2026-11-22T13:30:00.1Z", NULL), T_2026_11_22_1330Z + 100);
	CHECK_INT(at_ok("2026-11-22T13:30:00.123Z", NULL), T_2026_11_22_1330Z + 123);
	CHECK_INT(at_ok("2026-11-22T13:30:00.123456789Z", NULL), T_2026_11_22_1330Z + 123);
	CHECK_INT(at_ok("2026-11-22T13:30:00.999999+00:00", NULL), T_2026_11_22_1330Z + 999);
	CHECK(at_refused("2026-11-22T13:30:00.Z", NULL));
}

static void
test_leap_days(void)
{
	CHECK_INT(at_ok("2024-02-29T12:00:00Z", NULL), 1709208000000LL);
	CHECK_INT(at_ok("2000-02-29 00:00", NULL), 951782400000LL);
	CHECK(at_refused("2025-02-29T12:00:00Z", NULL));
	CHECK(at_refused("1900-02-29T12:00:00Z", NULL));
	CHECK(at_refused("2100-02-29 12:00", NULL));
}

static void
test_field_ranges_are_checked(void)
{
	CHECK(at_refused("2026-00-10T00:00:00Z", NULL));
	CHECK(at_refused("2026-13-10T00:00:00Z", NULL));
	CHECK(at_refused("2026-04-31T00:00:00Z", NULL));
	CHECK(at_refused("2026-04-00T00:00:00Z", NULL));
	CHECK(at_refused("2026-04-10T24:00:00Z", NULL));
	CHECK(at_refused("2026-04-10T23:60:00Z", NULL));
	CHECK(at_refused("2026-04-10T23:59:60Z", NULL));  /* leap seconds are refused */
	CHECK(at_refused("2026-04-10T10:00:00+24:00", NULL));
	CHECK(at_refused("2026-04-10T10:00:00+01:60", NULL));
	CHECK(at_refused("2026-04-10T10:00:00+0100", NULL));
}

static void
test_garbage_and_empty_are_refused(void)
{
	CHECK(at_refused("", NULL));
	CHECK(at_refused("tomorrow", NULL));
	CHECK(at_refused("\xff\xfe", NULL));
	CHECK(at_refused("2026-11-22T13:30:00Zjunk", NULL));
	CHECK(at_refused(" 2026-11-22T13:30:00Z", NULL));
	CHECK(at_refused("2026-11-22T13:30:00Z ", NULL));
	CHECK(at_refused("\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x96", NULL));
	CHECK(at_refused("2026-1-22 13:30", NULL));
	CHECK(at_refused("2026-11-22", NULL));
	CHECK(at_refused("2026-11-22 13", NULL));
	CHECK(at_refused("2026-11-22 13:30:0", NULL));
	CHECK(at_refused("+2026-11-22T13:30:00Z", NULL));
	CHECK(at_refused("2026-11-22T13:30:00.123456789012345678901234567890123456789012345678Z",
	                 NULL));
}

static void
test_unix_seconds(void)
{
	CHECK_INT(at_ok("0", NULL), 0);
	CHECK_INT(at_ok("1795354200", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("999999999999", NULL), 999999999999000LL);
	CHECK(at_refused("1000000000000", NULL));        /* 13 digits */
	CHECK(at_refused("99999999999999999999999", NULL));
	CHECK(at_refused("-5", NULL));
	CHECK(at_refused("1795354200.5", NULL));
	CHECK(at_refused("1795354200", "Europe/Berlin"));
}

static void
test_local_form_in_utc(void)
{
	CHECK_INT(at_ok("2026-11-22 13:30", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22 13:30:00", ""), T_2026_11_22_1330Z);
	/* Without an offset, the T form is local too. */
	CHECK_INT(at_ok("2026-11-22T13:30:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T13:30", NULL), T_2026_11_22_1330Z);
}

static void
test_local_form_in_a_zone_summer_and_winter(void)
{
	CHECK_INT(at_ok("2026-07-01 12:00", "Europe/Berlin"), 1782900000000LL);
	CHECK_INT(at_ok("2026-01-15 12:00", "Europe/Berlin"), 1768474800000LL);
	CHECK_INT(at_ok("2026-11-22 08:30", "America/New_York"), T_2026_11_22_1330Z);
}

static void
test_local_dst_gap_is_refused(void)
{
	const char *why = NULL;
	pd_ms t;

	CHECK_INT(timeparse_at("2026-03-29 02:30", "Europe/Berlin", &t, &why), -1);
	CHECK(why != NULL && strstr(why, "does not exist") != NULL);
	CHECK(at_refused("2026-03-08 02:30", "America/New_York"));
	/* The minutes either side of the gap exist. */
	CHECK_INT(at_ok("2026-03-29 01:59", "Europe/Berlin"), 1774745940000LL);
	CHECK_INT(at_ok("2026-03-29 03:00", "Europe/Berlin"), 1774746000000LL);
}

static void
test_local_dst_overlap_means_the_first_occurrence(void)
{
	CHECK_INT(at_ok("2026-10-25 02:30", "Europe/Berlin"), 1792888200000LL);
	CHECK_INT(at_ok("2026-11-01 01:30", "America/New_York"), 1793511000000LL);
}

static void
test_unknown_or_unsafe_zones_are_refused(void)
{
	CHECK(at_refused("2026-11-22 13:30", "Mars/Base"));
	CHECK(at_refused("2026-11-22 13:30", "../etc/passwd"));
	CHECK(at_refused("2026-11-22 13:30", "/etc/passwd"));
	CHECK(at_refused("2026-11-22 13:30", "Europe"));       /* a folder, not a zone */
	CHECK(at_refused("2026-11-22 13:30", "Europe/Berlin\n"));
	CHECK(at_refused("2026-11-22T13:30:00Z", "Europe/Berlin"));
	CHECK(timezone_exists("UTC"));
	CHECK(timezone_exists("America/Argentina/Buenos_Aires"));
	CHECK(!timezone_exists(""));
	CHECK(!timezone_exists(NULL));
}

static void
test_zone_conversion_restores_tz(void)
{
	setenv("TZ", "Asia/Tokyo", 1);
	at_ok("2026-07-01 12:00", "Europe/Berlin");
	CHECK_STR(getenv("TZ"), "Asia/Tokyo");
	unsetenv("TZ");
	at_ok("2026-07-01 12:00", "Europe/Berlin");
	CHECK(getenv("TZ") == NULL);
}

static void
test_durations(void)
{
	static const struct {
		const char *text;
		pd_ms ms;
	} good[] = {
		{ "0", 0 }, { "0s", 0 }, { "90", 90000 }, { "90s", 90000 }, { "15m", 900000 },
		{ "2h", 7200000 }, { "7d", 604800000 }, { "1h30m", 5400000 },
		{ "1d2h3m4s", 93784000 }, { "3650d", 3650LL * 86400000 },
	};
	static const char *const bad[] = {
		"", "h", "1x", "1h1h", "1m1h", "-5", " 5", "5 ", "1.5h", "1h30", "1H",
		"3651d", "999999999d", "1234567890", "s",
	};

	for (size_t i = 0; i < UNIT_COUNT(good); i++) {
		const char *why;
		pd_ms t = -1;

		CHECK_INT(timeparse_duration(good[i].text, &t, &why), 0);
		CHECK_INT(t, good[i].ms);
	}
	for (size_t i = 0; i < UNIT_COUNT(bad); i++) {
		const char *why = NULL;
		pd_ms t;

		if (timeparse_duration(bad[i], &t, &why) != -1 || why == NULL) {
			fprintf(stderr, "  duration \"%s\" accepted\n", bad[i]);
			unit_failed_checks++;
		}
	}
}

static void
test_format_is_rfc3339_utc_with_ms(void)
{
	char buf[PD_TIME_BUF];

	CHECK_STR(time_format(T_2026_11_22_1330Z + 123, buf), "2026-11-22T13:30:00.123Z");
	CHECK_STR(time_format(0, buf), "1970-01-01T00:00:00.000Z");
	CHECK_STR(time_format(-1000, buf), "1969-12-31T23:59:59.000Z");
	CHECK_STR(time_format(-1, buf), "1969-12-31T23:59:59.999Z");
	CHECK_STR(time_format(253402300799000LL, buf), "9999-12-31T23:59:59.000Z");
	CHECK_STR(time_format(-62135596800000LL, buf), "0001-01-01T00:00:00.000Z");
}

static void
test_format_round_trips(void)
{
	char buf[PD_TIME_BUF];
	const char *why;

	for (pd_ms t = -86400000LL * 800; t < 86400000LL * 40000; t += 7777777777LL) {
		pd_ms back = -1;

		CHECK_INT(timeparse_rfc3339(time_format(t, buf), &back, &why), 0);
		CHECK_INT(back, t);
	}
}

static const struct unit_test tests[] = {
	UNIT(test_rfc3339_z_and_offsets_convert_to_utc),
	UNIT(test_rfc3339_fractions_truncate_to_ms),
	UNIT(test_leap_days),
	UNIT(test_field_ranges_are_checked),
	UNIT(test_garbage_and_empty_are_refused),
	UNIT(test_unix_seconds),
	UNIT(test_local_form_in_utc),
	UNIT(test_local_form_in_a_zone_summer_and_winter),
	UNIT(test_local_dst_gap_is_refused),
	UNIT(test_local_dst_overlap_means_the_first_occurrence),
	UNIT(test_unknown_or_unsafe_zones_are_refused),
	UNIT(test_zone_conversion_restores_tz),
	UNIT(test_durations),
	UNIT(test_format_is_rfc3339_utc_with_ms),
	UNIT(test_format_round_trips),
};

int
main(void)
{
	return unit_run("timeparse", tests, UNIT_COUNT(tests));
}
