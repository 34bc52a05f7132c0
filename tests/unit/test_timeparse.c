/*
 * test_timeparse.c: times and durations. Expected instants were computed
 * independently with GNU date (date -u -d 2026-11-22T13:30:00Z +%s, and
 * TZ=Europe/Berlin date -d '2026-07-01 12:00' +%s for zones).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "postdate.h"
#include "unit.h"

#define T_2026_11_22_1330Z 1795354200000LL

/* Parses with timeparse_at, counting a failed check when it is refused. */
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

/* The reason timeparse_at gives for refusing text, or NULL (and a failed
 * check) if it accepts it or refuses without a reason. */
static const char *
at_why(const char *text, const char *tz)
{
	const char *why = NULL;
	pd_ms t = -1;
	int rc = timeparse_at(text, tz, &t, &why);

	if (rc != -1 || why == NULL || *why == '\0') {
		fprintf(stderr, "  \"%s\" (tz %s) accepted as %lld\n", text, tz ? tz : "-",
		        (long long)t);
		unit_failed_checks++;
		return NULL;
	}
	return why;
}

/* Whether timeparse_at refuses text with a reason. */
static int
at_refused(const char *text, const char *tz)
{
	return at_why(text, tz) != NULL;
}

/* Whether why exists and contains part. */
static int
why_says(const char *why, const char *part)
{
	return why != NULL && strstr(why, part) != NULL;
}

static void
test_rfc3339_z_is_utc(void)
{
	CHECK_INT(at_ok("2026-11-22T13:30:00Z", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22t13:30:00z", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22 13:30:00Z", NULL), T_2026_11_22_1330Z);
}

static void
test_rfc3339_offset_converts_to_utc(void)
{
	CHECK_INT(at_ok("2026-11-22T14:30:00+01:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T08:00:00-05:30", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T13:30:00+00:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T13:30:00-00:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-23T00:30:00+11:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T00:00:00+23:59", NULL), 1795219260000LL);
}

static void
test_rfc3339_bad_offsets_are_refused(void)
{
	CHECK(why_says(at_why("2026-04-10T10:00:00+24:00", NULL), "offset"));
	CHECK(why_says(at_why("2026-04-10T10:00:00+01:60", NULL), "offset"));
	CHECK(why_says(at_why("2026-04-10T10:00:00+0100", NULL), "offset"));
	CHECK(why_says(at_why("2026-04-10T10:00:00+1:00", NULL), "offset"));
	CHECK(at_refused("2026-04-10T10:00:00+01:00:00", NULL));
	CHECK(at_refused("2026-04-10T10:00:00+", NULL));
	CHECK(at_refused("2026-04-10T10:00:00Z+01:00", NULL));
}

static void
test_rfc3339_needs_seconds(void)
{
	CHECK(why_says(at_why("2026-11-22T13:30Z", NULL), "seconds"));
	CHECK(at_refused("2026-11-22T13:30+01:00", NULL));
}

static void
test_rfc3339_fractions_truncate_to_ms(void)
{
	CHECK_INT(at_ok("2026-11-22T13:30:00.1Z", NULL), T_2026_11_22_1330Z + 100);
	CHECK_INT(at_ok("2026-11-22T13:30:00.12Z", NULL), T_2026_11_22_1330Z + 120);
	CHECK_INT(at_ok("2026-11-22T13:30:00.123Z", NULL), T_2026_11_22_1330Z + 123);
	CHECK_INT(at_ok("2026-11-22T13:30:00.123456789Z", NULL), T_2026_11_22_1330Z + 123);
	CHECK_INT(at_ok("2026-11-22T13:30:00.999999+00:00", NULL), T_2026_11_22_1330Z + 999);
	CHECK_INT(at_ok("2026-11-22T14:30:00.5+01:00", NULL), T_2026_11_22_1330Z + 500);
	CHECK(why_says(at_why("2026-11-22T13:30:00.Z", NULL), "fraction"));
	CHECK(at_refused("2026-11-22T13:30:00,5Z", NULL));
	CHECK(at_refused("2026-11-22T13:30:00.5.5Z", NULL));
}

static void
test_rfc3339_long_fraction_direct(void)
{
	const char *why = NULL;
	pd_ms t = -1;

	/* timeparse_rfc3339 itself has no length cap; timeparse_at has. */
	CHECK_INT(timeparse_rfc3339("2026-11-22T13:30:00."
	                            "98765432109876543210987654321098765432109876543210Z",
	                            &t, &why), 0);
	CHECK_INT(t, T_2026_11_22_1330Z + 987);
	CHECK(why == NULL);
}

static void
test_leap_day_2024_and_2000_are_valid(void)
{
	CHECK_INT(at_ok("2024-02-29T12:00:00Z", NULL), 1709208000000LL);
	CHECK_INT(at_ok("2000-02-29T00:00:00Z", NULL), 951782400000LL);
	CHECK_INT(at_ok("2000-02-29 00:00", NULL), 951782400000LL);
}

static void
test_leap_day_2025_1900_2100_are_invalid(void)
{
	CHECK(why_says(at_why("2025-02-29T12:00:00Z", NULL), "leap"));
	CHECK(why_says(at_why("1900-02-29T12:00:00Z", NULL), "leap"));
	CHECK(why_says(at_why("2100-02-29 12:00", NULL), "leap"));
	CHECK(at_refused("2024-02-30T12:00:00Z", NULL));
	/* The day after each refused leap day is there. */
	CHECK_INT(at_ok("1900-03-01T00:00:00Z", NULL), -2203891200000LL);
	CHECK_INT(at_ok("2100-03-01T00:00:00Z", NULL), 4107542400000LL);
}

static void
test_month_range_is_checked(void)
{
	CHECK(why_says(at_why("2026-00-10T00:00:00Z", NULL), "month"));
	CHECK(why_says(at_why("2026-13-10T00:00:00Z", NULL), "month"));
	CHECK(at_refused("2026-99-10 00:00", NULL));
}

static void
test_day_range_is_checked(void)
{
	CHECK(why_says(at_why("2026-04-00T00:00:00Z", NULL), "day"));
	CHECK(why_says(at_why("2026-04-31T00:00:00Z", NULL), "month"));
	CHECK(at_refused("2026-01-32T00:00:00Z", NULL));
	CHECK(at_refused("2026-06-31 00:00", NULL));
	CHECK(at_refused("2026-09-31 00:00", NULL));
	CHECK(at_refused("2026-11-31 00:00", NULL));
	CHECK_INT(at_ok("2026-12-31T00:00:00Z", NULL), 1798675200000LL);
}

static void
test_hour_and_minute_ranges_are_checked(void)
{
	CHECK(why_says(at_why("2026-04-10T24:00:00Z", NULL), "hour"));
	CHECK(why_says(at_why("2026-04-10T23:60:00Z", NULL), "minute"));
	CHECK(why_says(at_why("2026-04-10T23:59:61Z", NULL), "second"));
	CHECK(at_refused("2026-04-10 24:00", NULL));
	CHECK(at_refused("2026-04-10 12:60", NULL));
	CHECK_INT(at_ok("2026-11-22T23:59:59Z", NULL), T_2026_11_22_1330Z + 37799000LL);
}

static void
test_leap_second_is_refused(void)
{
	CHECK(why_says(at_why("2016-12-31T23:59:60Z", NULL), "leap second"));
	CHECK(at_refused("2016-12-31 23:59:60", NULL));
}

static void
test_years_0000_to_9999(void)
{
	CHECK_INT(at_ok("0000-01-01T00:00:00Z", NULL), -62167219200000LL);
	CHECK_INT(at_ok("0001-01-01 00:00", NULL), -62135596800000LL);
	CHECK_INT(at_ok("9999-12-31T23:59:59.999Z", NULL), 253402300799999LL);
	CHECK(at_refused("10000-01-01T00:00:00Z", NULL));
	CHECK(at_refused("-001-01-01T00:00:00Z", NULL));
	CHECK(at_refused("826-11-22T13:30:00Z", NULL));
}

/* Regression: at=999999999999 was accepted as the year 33658, which is not
 * RFC 3339 (four-digit years) and which the page showed as "NaN d late".
 * Every form is checked on the instant it names, in UTC. */
static void
test_times_past_the_year_9999_are_refused(void)
{
	CHECK(why_says(at_why("999999999999", NULL), "9999"));
	CHECK(why_says(at_why("253402300800", NULL), "9999"));
	CHECK(why_says(at_why("9999-12-31T23:59:59-01:00", NULL), "9999"));
	CHECK(why_says(at_why("9999-12-31 23:30", "America/New_York"), "9999"));
	CHECK(why_says(at_why("0000-01-01T00:30:00+01:00", NULL), "0000"));
	CHECK_INT(at_ok("9999-12-31T23:59:59+00:00", NULL), 253402300799000LL);
	CHECK_INT(at_ok("9999-12-31 23:30", "Europe/Berlin"), 253402295400000LL);
}

static void
test_garbage_bytes_are_refused(void)
{
	CHECK(at_refused("tomorrow", NULL));
	CHECK(at_refused("\xff\xfe", NULL));
	CHECK(at_refused("2026-11-22T13:30:00Zjunk", NULL));
	CHECK(at_refused("2026-11-22T13:30:00+01:00junk", NULL));
	/* "２０２６" in fullwidth digits. */
	CHECK(at_refused("\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x96", NULL));
	CHECK(at_refused("\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x96-11-22 13:30", NULL));
	CHECK(at_refused("2026-11-22T13:30:00\xff", NULL));
	CHECK(at_refused("2026-11-22\t13:30:00Z", NULL));
	CHECK(at_refused("2026/11/22 13:30", NULL));
	CHECK(at_refused("Z", NULL));
	CHECK(at_refused("+", NULL));
}

static void
test_partial_and_padded_times_are_refused(void)
{
	CHECK(at_refused(" 2026-11-22T13:30:00Z", NULL));
	CHECK(at_refused("2026-11-22T13:30:00Z ", NULL));
	CHECK(at_refused("2026-11-22  13:30", NULL));
	CHECK(at_refused("2026-11-22 13:30 ", NULL));
	CHECK(at_refused("2026-1-22 13:30", NULL));
	CHECK(at_refused("2026-11-2 13:30", NULL));
	CHECK(at_refused("2026-11-22 1:30", NULL));
	CHECK(at_refused("2026-11-22", NULL));
	CHECK(at_refused("2026-11-22 13", NULL));
	CHECK(at_refused("2026-11-22 13:3", NULL));
	CHECK(at_refused("2026-11-22 13:30:0", NULL));
	CHECK(at_refused("2026-11-22 13:30:", NULL));
	CHECK(at_refused("+2026-11-22T13:30:00Z", NULL));
}

static void
test_empty_and_null_are_refused(void)
{
	const char *why = NULL;
	pd_ms t;

	CHECK(why_says(at_why("", NULL), "empty"));
	CHECK_INT(timeparse_at(NULL, NULL, &t, &why), -1);
	CHECK_INT(timeparse_rfc3339(NULL, &t, &why), -1);
	CHECK_INT(timeparse_rfc3339("", &t, &why), -1);
	CHECK_INT(timeparse_local(NULL, NULL, &t, &why), -1);
	CHECK_INT(timeparse_local("", "Europe/Berlin", &t, &why), -1);
	CHECK_INT(timeparse_unix(NULL, &t, &why), -1);
	CHECK_INT(timeparse_unix("", &t, &why), -1);
	CHECK_INT(timeparse_duration(NULL, &t, &why), -1);
	CHECK(why_says(why, "empty"));
}

static void
test_text_longer_than_the_limit_is_refused(void)
{
	char text[PD_MAX_TIME_TEXT + 2];

	CHECK(why_says(at_why("2026-11-22T13:30:00.12345678901234567890123456789012345678901234Z",
	                      NULL), "too long"));
	memset(text, '1', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	CHECK(why_says(at_why(text, NULL), "too long"));
}

static void
test_unix_seconds_convert_to_ms(void)
{
	CHECK_INT(at_ok("0", NULL), 0);
	CHECK_INT(at_ok("1795354200", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("253402300799", NULL), 253402300799000LL);   /* 9999-12-31T23:59:59Z */
	CHECK_INT(at_ok("000000000001", NULL), 1000);
}

static void
test_unix_seconds_overflow_is_refused(void)
{
	CHECK(why_says(at_why("1000000000000", NULL), "range"));
	CHECK(at_refused("0001795354200", NULL));   /* 13 digits, even with zeros */
	CHECK(why_says(at_why("99999999999999999999999", NULL), "range"));
	CHECK(at_refused("18446744073709551616", NULL));
}

static void
test_unix_seconds_take_digits_only(void)
{
	const char *why = NULL;
	pd_ms t;

	CHECK(at_refused("-5", NULL));
	CHECK(at_refused("+5", NULL));
	CHECK(at_refused(" 5", NULL));
	CHECK(at_refused("5 ", NULL));
	CHECK(at_refused("1795354200.5", NULL));
	CHECK(at_refused("1e9", NULL));
	CHECK(at_refused("0x10", NULL));
	CHECK_INT(timeparse_unix("12a", &t, &why), -1);
	CHECK(why_says(why, "digits"));
}

static void
test_tz_with_unix_or_rfc3339_is_refused(void)
{
	CHECK(why_says(at_why("1795354200", "Europe/Berlin"), "tz applies only"));
	CHECK(why_says(at_why("2026-11-22T13:30:00Z", "Europe/Berlin"), "tz applies only"));
	CHECK(why_says(at_why("2026-11-22T14:30:00+01:00", "UTC"), "tz applies only"));
	/* Malformed text gets its own reason, not tz's. */
	CHECK(why_says(at_why("2026-11-22T13:30:00+99:00", "Europe/Berlin"), "offset"));
	/* An empty tz is no tz. */
	CHECK_INT(at_ok("1795354200", ""), T_2026_11_22_1330Z);
}

static void
test_local_form_in_utc(void)
{
	CHECK_INT(at_ok("2026-11-22 13:30", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22 13:30:00", ""), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22 13:30:59", NULL), T_2026_11_22_1330Z + 59000);
	CHECK_INT(at_ok("2026-11-22 13:30", "UTC"), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22 13:30", "Etc/UTC"), T_2026_11_22_1330Z);
}

static void
test_local_form_with_t_and_no_offset_is_local(void)
{
	CHECK_INT(at_ok("2026-11-22T13:30:00", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22T13:30", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-11-22t13:30", NULL), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-07-01T12:00:00", "Europe/Berlin"), 1782900000000LL);
}

static void
test_local_form_takes_no_fraction(void)
{
	CHECK(why_says(at_why("2026-11-22 13:30:00.5", NULL), "fraction"));
	CHECK(at_refused("2026-11-22 13:30:00.5", "Europe/Berlin"));
}

static void
test_local_form_in_berlin_summer_and_winter(void)
{
	/* CEST is UTC+2, CET is UTC+1. */
	CHECK_INT(at_ok("2026-07-01 12:00", "Europe/Berlin"), 1782900000000LL);
	CHECK_INT(at_ok("2026-01-15 12:00", "Europe/Berlin"), 1768474800000LL);
	CHECK_INT(at_ok("2026-11-22 08:30", "America/New_York"), T_2026_11_22_1330Z);
	CHECK_INT(at_ok("2026-07-15 12:00:00", "America/New_York"), 1784131200000LL);
}

static void
test_local_dst_gap_is_error(void)
{
	const char *why = NULL;
	pd_ms t = -1;

	CHECK_INT(timeparse_at("2026-03-29 02:30", "Europe/Berlin", &t, &why), -1);
	CHECK(why_says(why, "does not exist"));
	CHECK_INT(t, -1);
	CHECK(why_says(at_why("2026-03-08 02:30", "America/New_York"), "does not exist"));
	CHECK(at_refused("2026-03-29 02:00", "Europe/Berlin"));
	CHECK(at_refused("2026-03-29 02:59:59", "Europe/Berlin"));
	/* Samoa skipped all of 2011-12-30. */
	CHECK(at_refused("2011-12-30 12:00", "Pacific/Apia"));
}

static void
test_local_times_beside_the_gap_exist(void)
{
	CHECK_INT(at_ok("2026-03-29 01:59", "Europe/Berlin"), 1774745940000LL);
	CHECK_INT(at_ok("2026-03-29 03:00", "Europe/Berlin"), 1774746000000LL);
	CHECK_INT(at_ok("2026-03-08 01:59", "America/New_York"), 1772953140000LL);
	CHECK_INT(at_ok("2026-03-08 03:00", "America/New_York"), 1772953200000LL);
}

static void
test_local_dst_overlap_resolves_to_first_occurrence(void)
{
	CHECK_INT(at_ok("2026-10-25 02:30", "Europe/Berlin"), 1792888200000LL);
	CHECK_INT(at_ok("2026-11-01 01:30", "America/New_York"), 1793511000000LL);
}

static void
test_local_offset_change_overlap_resolves_to_first_occurrence(void)
{
	/* Regression: these zones moved their standard offset back, so the
	 * hour repeats with tm_isdst 0 both times and mktime alone picked
	 * the second occurrence for Pyongyang. */
	CHECK_INT(at_ok("2015-08-14 23:45", "Asia/Pyongyang"), 1439563500000LL);
	CHECK_INT(at_ok("2014-10-26 01:30", "Europe/Moscow"), 1414272600000LL);
}

static void
test_local_instant_minus_one_second_is_not_an_error(void)
{
	/* Regression: mktime returns -1 for 1969-12-31T23:59:59Z too. */
	CHECK_INT(at_ok("1970-01-01 00:59:59", "Europe/Berlin"), -1000);
	CHECK_INT(at_ok("1969-12-31 23:59:59", NULL), -1000);
}

static void
test_unknown_zone_is_error(void)
{
	CHECK(why_says(at_why("2026-11-22 13:30", "Mars/Base"), "time zone"));
	CHECK(at_refused("2026-11-22 13:30", "Europe/Berlinn"));
	CHECK(at_refused("2026-11-22 13:30", "europe/berlin"));
	CHECK(at_refused("2026-11-22 13:30", "Europe"));       /* a folder, not a zone */
	CHECK(at_refused("2026-11-22 13:30", "Europe/Berlin/"));
	CHECK(at_refused("2026-11-22 13:30", "leapseconds"));  /* a table, not a zone */
	CHECK(at_refused("2026-11-22 13:30", "zone.tab"));
	CHECK(!timezone_exists("Mars/Base"));
	CHECK(!timezone_exists(""));
	CHECK(!timezone_exists(NULL));
}

static void
test_unsafe_zone_names_are_refused(void)
{
	char longname[PD_MAX_TIME_TEXT + 2];

	CHECK(at_refused("2026-11-22 13:30", "../etc/passwd"));
	CHECK(at_refused("2026-11-22 13:30", "/etc/passwd"));
	CHECK(at_refused("2026-11-22 13:30", "/usr/share/zoneinfo/Europe/Berlin"));
	CHECK(at_refused("2026-11-22 13:30", "Europe/../Europe/Berlin"));
	CHECK(at_refused("2026-11-22 13:30", "Europe/Berlin\n"));
	CHECK(at_refused("2026-11-22 13:30", " Europe/Berlin"));
	CHECK(at_refused("2026-11-22 13:30", ":Europe/Berlin"));
	CHECK(at_refused("2026-11-22 13:30", "EST5EDT,M3.2.0,M11.1.0"));
	CHECK(!timezone_exists("right/Europe/Berlin"));   /* counts leap seconds */
	memset(longname, 'A', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(!timezone_exists(longname));
}

static void
test_known_zones_exist(void)
{
	CHECK(timezone_exists("UTC"));
	CHECK(timezone_exists("Europe/Berlin"));
	CHECK(timezone_exists("America/Argentina/Buenos_Aires"));
	CHECK(timezone_exists("Etc/GMT+5"));
	CHECK(timezone_exists("America/Port-au-Prince"));
	CHECK(timezone_exists("US/Eastern"));   /* a symbolic link */
}

static void
test_local_restores_tz(void)
{
	setenv("TZ", "UTC", 1);
	at_ok("2026-07-01 12:00", "Europe/Berlin");
	CHECK_STR(getenv("TZ"), "UTC");
	setenv("TZ", "Asia/Tokyo", 1);
	at_refused("2026-03-29 02:30", "Europe/Berlin");
	CHECK_STR(getenv("TZ"), "Asia/Tokyo");
	unsetenv("TZ");
	at_ok("2026-07-01 12:00", "Europe/Berlin");
	CHECK(getenv("TZ") == NULL);
}

struct tz_watch {
	volatile int stop;
	int changed;
};

/* Reads TZ over and over until told to stop, counting readings that are
 * not the value the test set. */
static void *
watch_tz(void *arg)
{
	struct tz_watch *w = arg;

	while (!w->stop) {
		const char *tz = getenv("TZ");

		if (tz == NULL || strcmp(tz, "Asia/Tokyo") != 0)
			w->changed++;
	}
	return NULL;
}

/* Regression: local times were converted by switching the process-wide TZ
 * (setenv + tzset + mktime), which another thread could see mid-switch
 * (and which is undefined behaviour beside the request threads). */
static void
test_local_conversion_never_changes_tz_seen_by_other_threads(void)
{
	struct tz_watch w = { 0, 0 };
	pthread_t thread;

	setenv("TZ", "Asia/Tokyo", 1);
	CHECK_INT(pthread_create(&thread, NULL, watch_tz, &w), 0);
	for (int i = 0; i < 2000; i++)
		at_ok(i % 2 ? "2026-07-01 12:00" : "2026-10-25 02:30", "Europe/Berlin");
	w.stop = 1;
	pthread_join(thread, NULL);
	CHECK_INT(w.changed, 0);
	unsetenv("TZ");
}

static void
test_local_ignores_tzdir(void)
{
	/* The zone we checked is the zone used, whatever TZDIR says. */
	setenv("TZDIR", "/nonexistent", 1);
	CHECK_INT(at_ok("2026-07-01 12:00", "Europe/Berlin"), 1782900000000LL);
	unsetenv("TZDIR");
}

static void
test_why_is_set_only_on_error(void)
{
	const char *why = "untouched";
	pd_ms t;

	CHECK_INT(timeparse_at("2026-11-22T13:30:00Z", NULL, &t, &why), 0);
	CHECK_INT(timeparse_at("2026-11-22 13:30", "Europe/Berlin", &t, &why), 0);
	CHECK_INT(timeparse_at("1795354200", NULL, &t, &why), 0);
	CHECK_INT(timeparse_rfc3339("2026-11-22T13:30:00Z", &t, &why), 0);
	CHECK_INT(timeparse_local("2026-11-22 13:30", NULL, &t, &why), 0);
	CHECK_INT(timeparse_unix("1", &t, &why), 0);
	CHECK_INT(timeparse_duration("1h30m", &t, &why), 0);
	CHECK_INT(timeparse_duration("90", &t, &why), 0);
	CHECK_STR(why, "untouched");
}

static void
test_duration_examples(void)
{
	static const struct {
		const char *text;
		pd_ms ms;
	} good[] = {
		{ "0", 0 }, { "0s", 0 }, { "00", 0 }, { "90", 90000 }, { "90s", 90000 },
		{ "15m", 900000 }, { "2h", 7200000 }, { "7d", 604800000 }, { "1h30m", 5400000 },
		{ "1d2h3m4s", 93784000 }, { "1d4s", 86404000 }, { "2h0m", 7200000 },
		{ "86400s", 86400000 }, { "120m", 7200000 },
	};

	for (size_t i = 0; i < UNIT_COUNT(good); i++) {
		const char *why = NULL;
		pd_ms t = -1;

		CHECK_INT(timeparse_duration(good[i].text, &t, &why), 0);
		CHECK_INT(t, good[i].ms);
		if (t != good[i].ms)
			fprintf(stderr, "    (duration \"%s\")\n", good[i].text);
	}
}

static void
test_duration_malformed_is_error(void)
{
	static const char *const bad[] = {
		"", "h", "s", "1x", "1h1h", "1m1h", "1s1d", "-5", "+5", " 5", "5 ", "1.5h",
		"1h30", "1H", "1h 30m", "1h-30m", "1hh", "5ss", "1w", "1e3", "0x10",
		"1234567890s", "1234567890", "0000000001", "\xff", "\xef\xbc\x95s",
	};

	for (size_t i = 0; i < UNIT_COUNT(bad); i++) {
		const char *why = NULL;
		pd_ms t;

		if (timeparse_duration(bad[i], &t, &why) != -1 || why == NULL || *why == '\0') {
			fprintf(stderr, "  duration \"%s\" accepted\n", bad[i]);
			unit_failed_checks++;
		}
	}
}

static void
test_duration_why_names_the_problem(void)
{
	const char *why = NULL;
	pd_ms t;

	CHECK_INT(timeparse_duration("1m1h", &t, &why), -1);
	CHECK(why_says(why, "largest first"));
	CHECK_INT(timeparse_duration("1h30", &t, &why), -1);
	CHECK(why_says(why, "needs a unit"));
	CHECK_INT(timeparse_duration("1234567890s", &t, &why), -1);
	CHECK(why_says(why, "9 digits"));
	CHECK_INT(timeparse_duration("", &t, &why), -1);
	CHECK(why_says(why, "empty"));
}

static void
test_duration_is_capped_at_ten_years(void)
{
	const char *why = NULL;
	pd_ms t = -1;

	CHECK_INT(timeparse_duration("3650d", &t, &why), 0);
	CHECK_INT(t, 3650LL * 86400000);
	CHECK_INT(timeparse_duration("87600h", &t, &why), 0);
	CHECK_INT(t, 3650LL * 86400000);
	CHECK_INT(timeparse_duration("315360000", &t, &why), 0);
	CHECK_INT(t, 3650LL * 86400000);
	CHECK_INT(timeparse_duration("3650d1s", &t, &why), -1);
	CHECK(why_says(why, "ten years"));
	CHECK_INT(timeparse_duration("3651d", &t, &why), -1);
	CHECK_INT(timeparse_duration("315360001", &t, &why), -1);
	CHECK_INT(timeparse_duration("3649d24h1s", &t, &why), -1);
	/* Sums that would overflow int64_t without the cap check. */
	CHECK_INT(timeparse_duration("999999999d999999999h999999999m999999999s", &t, &why), -1);
	CHECK(why_says(why, "ten years"));
	CHECK_INT(timeparse_duration("999999999d", &t, &why), -1);
	CHECK_INT(timeparse_duration("999999999s", &t, &why), -1);
}

static void
test_format_writes_ms_and_z(void)
{
	char buf[PD_TIME_BUF];

	CHECK_STR(time_format(T_2026_11_22_1330Z + 123, buf), "2026-11-22T13:30:00.123Z");
	CHECK_STR(time_format(T_2026_11_22_1330Z + 7, buf), "2026-11-22T13:30:00.007Z");
	CHECK_STR(time_format(0, buf), "1970-01-01T00:00:00.000Z");
	CHECK_STR(time_format(951782400000LL, buf), "2000-02-29T00:00:00.000Z");
	CHECK_STR(time_format(253402300799999LL, buf), "9999-12-31T23:59:59.999Z");
	CHECK(time_format(T_2026_11_22_1330Z, buf) == buf);
}

static void
test_format_before_1970(void)
{
	char buf[PD_TIME_BUF];

	CHECK_STR(time_format(-1000, buf), "1969-12-31T23:59:59.000Z");
	CHECK_STR(time_format(-1, buf), "1969-12-31T23:59:59.999Z");
	CHECK_STR(time_format(-86400000LL, buf), "1969-12-31T00:00:00.000Z");
	CHECK_STR(time_format(-2203891200000LL, buf), "1900-03-01T00:00:00.000Z");
	CHECK_STR(time_format(-62135596800000LL, buf), "0001-01-01T00:00:00.000Z");
	CHECK_STR(time_format(-62167219200000LL, buf), "0000-01-01T00:00:00.000Z");
}

static void
test_format_extremes_do_not_crash(void)
{
	char buf[PD_TIME_BUF];

	CHECK(strlen(time_format(INT64_MAX, buf)) < PD_TIME_BUF);
	CHECK(strlen(time_format(INT64_MIN, buf)) < PD_TIME_BUF);
	CHECK(buf[strlen(buf) - 1] == 'Z');
}

static void
test_format_round_trips(void)
{
	char buf[PD_TIME_BUF];
	const char *why;

	/* From year 0000 to 9999 in uneven steps, with stray milliseconds. */
	for (pd_ms t = -62167219200000LL; t <= 253402300799999LL; t += 7777777777LL) {
		pd_ms back = -1;

		CHECK_INT(timeparse_rfc3339(time_format(t, buf), &back, &why), 0);
		CHECK_INT(back, t);
		if (back != t)
			break;
	}
}

static void
test_now_is_current(void)
{
	pd_ms a = time_now(), b;

	/* After 2024-01-01 and not running backwards across two calls. */
	CHECK(a > 1704067200000LL);
	b = time_now();
	CHECK(b >= a);
}

static const struct unit_test tests[] = {
	UNIT(test_rfc3339_z_is_utc),
	UNIT(test_rfc3339_offset_converts_to_utc),
	UNIT(test_rfc3339_bad_offsets_are_refused),
	UNIT(test_rfc3339_needs_seconds),
	UNIT(test_rfc3339_fractions_truncate_to_ms),
	UNIT(test_rfc3339_long_fraction_direct),
	UNIT(test_leap_day_2024_and_2000_are_valid),
	UNIT(test_leap_day_2025_1900_2100_are_invalid),
	UNIT(test_month_range_is_checked),
	UNIT(test_day_range_is_checked),
	UNIT(test_hour_and_minute_ranges_are_checked),
	UNIT(test_leap_second_is_refused),
	UNIT(test_years_0000_to_9999),
	UNIT(test_times_past_the_year_9999_are_refused),
	UNIT(test_garbage_bytes_are_refused),
	UNIT(test_partial_and_padded_times_are_refused),
	UNIT(test_empty_and_null_are_refused),
	UNIT(test_text_longer_than_the_limit_is_refused),
	UNIT(test_unix_seconds_convert_to_ms),
	UNIT(test_unix_seconds_overflow_is_refused),
	UNIT(test_unix_seconds_take_digits_only),
	UNIT(test_tz_with_unix_or_rfc3339_is_refused),
	UNIT(test_local_form_in_utc),
	UNIT(test_local_form_with_t_and_no_offset_is_local),
	UNIT(test_local_form_takes_no_fraction),
	UNIT(test_local_form_in_berlin_summer_and_winter),
	UNIT(test_local_dst_gap_is_error),
	UNIT(test_local_times_beside_the_gap_exist),
	UNIT(test_local_dst_overlap_resolves_to_first_occurrence),
	UNIT(test_local_offset_change_overlap_resolves_to_first_occurrence),
	UNIT(test_local_instant_minus_one_second_is_not_an_error),
	UNIT(test_unknown_zone_is_error),
	UNIT(test_unsafe_zone_names_are_refused),
	UNIT(test_known_zones_exist),
	UNIT(test_local_restores_tz),
	UNIT(test_local_ignores_tzdir),
	UNIT(test_local_conversion_never_changes_tz_seen_by_other_threads),
	UNIT(test_why_is_set_only_on_error),
	UNIT(test_duration_examples),
	UNIT(test_duration_malformed_is_error),
	UNIT(test_duration_why_names_the_problem),
	UNIT(test_duration_is_capped_at_ten_years),
	UNIT(test_format_writes_ms_and_z),
	UNIT(test_format_before_1970),
	UNIT(test_format_extremes_do_not_crash),
	UNIT(test_format_round_trips),
	UNIT(test_now_is_current),
};

int
main(void)
{
	return unit_run("timeparse", tests, UNIT_COUNT(tests));
}
