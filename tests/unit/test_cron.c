/*
 * test_cron.c: cron expressions (cron.c). The expected next occurrences
 * in cron_cases.h were computed independently by brute force with
 * Python's zoneinfo (tests/unit/cron_cases.py), minute by minute, around
 * the DST changes of Berlin, New York and Sydney, in a half-hour zone,
 * over leap days and month ends.
 */
#include <stdint.h>
#include <stdlib.h>

#include "postdate.h"
#include "unit.h"

struct next_case {
	const char *zone;
	const char *cron;
	pd_ms after;
	pd_ms want;
};

#include "cron_cases.h"

#define NNEXT (sizeof(next_cases) / sizeof(next_cases[0]))

/* Parses text, counting a failed check when it is refused. */
static struct pd_cron
parse_ok(const char *text)
{
	struct pd_cron c;
	const char *why = NULL;

	memset(&c, 0, sizeof(c));
	if (cron_parse(text, &c, &why) != 0) {
		fprintf(stderr, "  \"%s\" refused: %s\n", text, why);
		unit_failed_checks++;
	}
	return c;
}

/* The reason cron_parse gives for refusing text, or "" (and a failed
 * check) when it accepts it or gives no reason. */
static const char *
parse_why(const char *text)
{
	struct pd_cron c;
	const char *why = NULL;

	if (cron_parse(text, &c, &why) != -1 || why == NULL || *why == '\0') {
		fprintf(stderr, "  \"%s\" accepted\n", text);
		unit_failed_checks++;
		return "";
	}
	return why;
}

/* Whether text is refused with a reason containing part. */
static int
refused_saying(const char *text, const char *part)
{
	const char *why = parse_why(text);

	if (strstr(why, part) == NULL) {
		fprintf(stderr, "  \"%s\": \"%s\" does not say \"%s\"\n", text, why, part);
		return 0;
	}
	return 1;
}

/* The normalised text of an expression. */
static const char *
normalised(const char *text, char *buf)
{
	struct pd_cron c = parse_ok(text);

	return cron_format(&c, buf);
}

static void
test_fields_become_bitmasks(void)
{
	struct pd_cron c = parse_ok("0,30 9-17 1,15 * 1-5");

	CHECK(c.minutes == ((1ULL << 0) | (1ULL << 30)));
	CHECK_INT(c.hours, 0x3fe00);                    /* 9..17 */
	CHECK_INT(c.days, (1u << 1) | (1u << 15));
	CHECK_INT(c.months, 0x1ffe);                    /* 1..12 */
	CHECK_INT(c.weekdays, 0x3e);                    /* 1..5 */
	CHECK_INT(c.days_restricted, 1);
	CHECK_INT(c.weekdays_restricted, 1);
	c = parse_ok("* * * * *");
	CHECK(c.minutes == (1ULL << 60) - 1);
	CHECK_INT(c.hours, 0xffffff);
	CHECK_INT(c.days, 0xfffffffe);
	CHECK_INT(c.weekdays, 0x7f);
	CHECK_INT(c.days_restricted, 0);
	CHECK_INT(c.weekdays_restricted, 0);
}

static void
test_steps_ranges_and_single_start_steps(void)
{
	char buf[PD_CRON_BUF];

	CHECK_STR(normalised("*/15 */6 */10 */3 */2", buf), "0,15,30,45 0,6,12,18 1,11,21,31 1,4,7,10 0,2,4,6");
	CHECK_STR(normalised("10-20/5 1-23/11 * * *", buf), "10,15,20 1,12,23 * * *");
	/* "a/n" is "a-max/n", as in Vixie cron. */
	CHECK_STR(normalised("5/20 22/1 * * *", buf), "5,25,45 22,23 * * *");
	CHECK_STR(normalised("1,2,3,5,7-9 0 * * *", buf), "1-3,5,7-9 0 * * *");
	CHECK_STR(normalised("59/59 23 31 12 6", buf), "59 23 31 12 6");
}

static void
test_names_are_case_insensitive_and_sunday_is_0_or_7(void)
{
	char buf[PD_CRON_BUF];

	CHECK_STR(normalised("0 0 * JAN,jul,Dec MON-fri", buf), "0 0 * 1,7,12 1-5");
	CHECK_STR(normalised("0 0 * * 7", buf), "0 0 * * 0");
	CHECK_STR(normalised("0 0 * * 0-7", buf), "0 0 * * 0-6");
	CHECK_STR(normalised("0 0 * * 5-7", buf), "0 0 * * 0,5,6");
	/* Sunday ends a range of names as day 7. */
	CHECK_STR(normalised("0 0 * * fri-sun", buf), "0 0 * * 0,5,6");
	CHECK_STR(normalised("0 0 * * sun-tue", buf), "0 0 * * 0-2");
	CHECK_STR(normalised("0 0 * jan-dec/3 sat,1", buf), "0 0 * 1,4,7,10 1,6");
	CHECK_STR(normalised("0 0 * * mon/2", buf), "0 0 * * 0,1,3,5");
}

static void
test_macros_stand_for_their_fields(void)
{
	char buf[PD_CRON_BUF];

	CHECK_STR(normalised("@hourly", buf), "0 * * * *");
	CHECK_STR(normalised("@daily", buf), "0 0 * * *");
	CHECK_STR(normalised("@midnight", buf), "0 0 * * *");
	CHECK_STR(normalised("@weekly", buf), "0 0 * * 0");
	CHECK_STR(normalised("@monthly", buf), "0 0 1 * *");
	CHECK_STR(normalised("@yearly", buf), "0 0 1 1 *");
	CHECK_STR(normalised("@Annually", buf), "0 0 1 1 *");
	CHECK_STR(normalised("  @daily\t", buf), "0 0 * * *");
}

static void
test_blanks_separate_fields(void)
{
	char buf[PD_CRON_BUF];

	CHECK_STR(normalised("\t0  9\t\t*  * 1-5  ", buf), "0 9 * * 1-5");
}

/* Only "*" alone leaves a day field unrestricted: "*\/1" is a restriction
 * (so the OR rule applies), and the normalised form keeps the difference. */
static void
test_only_a_bare_star_leaves_a_day_field_open(void)
{
	struct pd_cron c = parse_ok("0 0 */1 * 1");
	char buf[PD_CRON_BUF];

	CHECK_INT(c.days_restricted, 1);
	CHECK_INT(c.weekdays_restricted, 1);
	CHECK_STR(cron_format(&c, buf), "0 0 1-31 * 1");
	c = parse_ok("0 0 1-31 * *");
	CHECK_INT(c.days_restricted, 1);
	CHECK_INT(c.weekdays_restricted, 0);
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
test_normalised_text_parses_back_to_the_same(void)
{
	static const char *const texts[] = {
		"*/7 1,3,5-9 */2 feb-nov/3 sun,wed-fri", "0 0 29 2 *", "@weekly", "* * * * *", "0-59 0-23 1-31 1-12 0-7", "0 12 1 * 1",
		"0-59/2 0-23/2 1-31/2 1-12/2 0-6/2", "0 0 */1 * *", "0 0 * * */1",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct pd_cron c = parse_ok(texts[i]), back;
		char buf[PD_CRON_BUF];

		back = parse_ok(cron_format(&c, buf));
		CHECK(same_cron(&c, &back));
	}
}

static void
test_each_kind_of_error_is_named(void)
{
	char big[PD_MAX_CRON + 2];

	CHECK(refused_saying("", "empty"));
	CHECK(refused_saying(" \t ", "empty"));
	CHECK(refused_saying("0 9 * *", "too few fields"));
	CHECK(refused_saying("0 0 9 * * 1-5", "six fields"));
	CHECK(refused_saying("0 0 9 * * 1-5 2026", "too many fields"));
	CHECK(refused_saying("0 24 * * *", "the hour field: a number is out of range 0-23"));
	CHECK(refused_saying("60 * * * *", "the minute field: a number is out of range 0-59"));
	CHECK(refused_saying("0 0 0 * *", "the day-of-month field: a number is out of range 1-31"));
	CHECK(refused_saying("0 0 32 * *", "day-of-month field: a number is out of range"));
	CHECK(refused_saying("0 0 * 13 *", "the month field: a number is out of range 1-12"));
	CHECK(refused_saying("0 0 * 0 *", "the month field: a number is out of range"));
	CHECK(refused_saying("0 0 * * 8", "the day-of-week field: a number is out of range 0-7"));
	CHECK(refused_saying("99999999999999999999 * * * *", "minute field: a number is out of range"));
	CHECK(refused_saying("1,,2 * * * *", "the minute field: a list has an empty item"));
	CHECK(refused_saying("1, * * * *", "the minute field: a list has an empty item"));
	CHECK(refused_saying("0 ,1 * * *", "the hour field: a list has an empty item"));
	CHECK(refused_saying("*/0 * * * *", "the minute field: a step of 0"));
	CHECK(refused_saying("* 1-5/0 * * *", "the hour field: a step of 0"));
	CHECK(refused_saying("*/60 * * * *", "the minute field: a step is larger"));
	CHECK(refused_saying("* */24 * * *", "the hour field: a step is larger"));
	CHECK(refused_saying("*/ * * * *", "a step needs a number"));
	CHECK(refused_saying("*/x * * * *", "a step needs a number"));
	CHECK(refused_saying("0 17-9 * * *", "the hour field: a range goes backwards"));
	CHECK(refused_saying("0 0 * dec-jan *", "the month field: a range goes backwards"));
	CHECK(refused_saying("0 0 * * 5-0", "the day-of-week field: a range goes backwards"));
	CHECK(refused_saying("0 1- * * *", "the hour field: a range needs a value after the -"));
	CHECK(refused_saying("0 0 * jan-6 *", "the month field: a range mixes a name and a number"));
	CHECK(refused_saying("0 0 * * 1-fri", "the day-of-week field: a range mixes"));
	CHECK(refused_saying("0 0 * * monday", "the day-of-week field: not a day name"));
	CHECK(refused_saying("0 0 * foo *", "the month field: not a month name"));
	CHECK(refused_saying("x * * * *", "the minute field: unexpected text"));
	CHECK(refused_saying("0 mon * * *", "the hour field: unexpected text"));
	CHECK(refused_saying("1.5 * * * *", "the minute field: unexpected text"));
	CHECK(refused_saying("*-5 * * * *", "the minute field: unexpected text"));
	CHECK(refused_saying("0 0 ? * *", "the day-of-month field: unexpected text"));
	CHECK(refused_saying("0 0 L * *", "the day-of-month field: unexpected text"));
	CHECK(refused_saying("0 0 * * 5#3", "the day-of-week field: unexpected text"));
	CHECK(refused_saying("0 0 * * 1\n", "the day-of-week field: unexpected text"));
	CHECK(refused_saying("-1 * * * *", "the minute field: unexpected text"));
	CHECK(refused_saying("@reboot", "@reboot is not supported"));
	CHECK(refused_saying("@every 5m", "stands alone"));
	CHECK(refused_saying("@fortnightly", "unknown macro"));
	CHECK(refused_saying("@daily 0", "stands alone"));
	/* Days that no chosen month has: it would never run. */
	CHECK(refused_saying("0 0 30 2 *", "never"));
	CHECK(refused_saying("0 0 31 apr,jun,sep,nov *", "never"));
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "* * * * *", 9);
	CHECK(refused_saying(big, "too long"));
	big[PD_MAX_CRON] = '\0';   /* exactly the limit: fine */
	parse_ok(big);
}

/* The OR rule means "0 0 30 2 mon" does run: on February's Mondays. */
static void
test_an_impossible_day_with_a_weekday_still_runs(void)
{
	parse_ok("0 0 30 2 mon");
	parse_ok("0 0 29 2 *");
	parse_ok("0 0 31 1-2 *");
}

/* Checks one case; returns whether it agreed. */
static int
next_case_agrees(const struct next_case *k)
{
	struct pd_cron c = parse_ok(k->cron);
	struct pd_tz *z = NULL;
	const char *why = NULL;
	pd_ms got = -1;
	char a[PD_TIME_BUF], g[PD_TIME_BUF], w[PD_TIME_BUF];

	if (strcmp(k->zone, "UTC") != 0 && tz_load(k->zone, &z) != 0) {
		fprintf(stderr, "  cannot load %s\n", k->zone);
		return 0;
	}
	if (cron_next(&c, z, k->after, &got, &why) != 0 || got != k->want) {
		fprintf(stderr, "  \"%s\" in %s after %s: %s, want %s (%s)\n", k->cron, k->zone,
		        time_format(k->after, a), time_format(got, g), time_format(k->want, w),
		        why ? why : "");
		tz_free(z);
		return 0;
	}
	tz_free(z);
	return 1;
}

static void
test_next_occurrences_match_python_zoneinfo(void)
{
	for (size_t i = 0; i < NNEXT; i++)
		CHECK(next_case_agrees(&next_cases[i]));
}

/* The same in a zone loaded as "UTC" as with a NULL zone. */
static void
test_a_loaded_utc_zone_agrees_with_null(void)
{
	struct pd_tz *z;
	struct pd_cron c = parse_ok("0 12 1 * 1");
	const char *why = NULL;
	pd_ms a = 0, b = 1;

	CHECK_INT(tz_load("UTC", &z), 0);
	CHECK_INT(cron_next(&c, z, 1782820800000LL, &a, &why), 0);
	CHECK_INT(cron_next(&c, NULL, 1782820800000LL, &b, &why), 0);
	CHECK_INT(a, b);
	tz_free(z);
}

/* Strictly after, at millisecond precision, and always a whole minute. */
static void
test_next_is_strictly_after_and_a_whole_minute(void)
{
	struct pd_cron c = parse_ok("30 2 * * *");
	const char *why = NULL;
	pd_ms t = 0;

	/* 2026-07-01T02:30:00Z */
	CHECK_INT(cron_next(&c, NULL, 1782873000000LL - 1, &t, &why), 0);
	CHECK_INT(t, 1782873000000LL);
	CHECK_INT(cron_next(&c, NULL, 1782873000000LL, &t, &why), 0);
	CHECK_INT(t, 1782873000000LL + 86400000LL);
	CHECK_INT(cron_next(&c, NULL, 1782873000000LL + 999, &t, &why), 0);
	CHECK_INT(t, 1782873000000LL + 86400000LL);
	c = parse_ok("* * * * *");
	CHECK_INT(cron_next(&c, NULL, 1782873000123LL, &t, &why), 0);
	CHECK_INT(t, 1782873060000LL);
	/* Before 1970 too (floor, not truncation towards zero). */
	CHECK_INT(cron_next(&c, NULL, -1, &t, &why), 0);
	CHECK_INT(t, 0);
	CHECK_INT(cron_next(&c, NULL, -60001, &t, &why), 0);
	CHECK_INT(t, -60000);
}

/* A struct that no text parses to (day 30 of February only): the search
 * gives up after ten years instead of running on. */
static void
test_an_expression_that_never_matches_gives_up(void)
{
	struct pd_cron c = parse_ok("0 0 1 1 *");
	const char *why = NULL;
	pd_ms t = 0;

	c.days = 1u << 30;
	c.months = 1u << 2;
	CHECK_INT(cron_next(&c, NULL, 1782873000000LL, &t, &why), -1);
	CHECK(why != NULL && strstr(why, "no occurrence") != NULL);
}

static void
test_instants_outside_the_calendar_are_refused(void)
{
	struct pd_cron c = parse_ok("* * * * *");
	const char *why = NULL;
	pd_ms t = 0;

	CHECK_INT(cron_next(&c, NULL, INT64_MAX, &t, &why), -1);
	CHECK(why != NULL);
	CHECK_INT(cron_next(&c, NULL, INT64_MIN, &t, &why), -1);
}

static const struct unit_test tests[] = {
	UNIT(test_fields_become_bitmasks),
	UNIT(test_steps_ranges_and_single_start_steps),
	UNIT(test_names_are_case_insensitive_and_sunday_is_0_or_7),
	UNIT(test_macros_stand_for_their_fields),
	UNIT(test_blanks_separate_fields),
	UNIT(test_only_a_bare_star_leaves_a_day_field_open),
	UNIT(test_normalised_text_parses_back_to_the_same),
	UNIT(test_each_kind_of_error_is_named),
	UNIT(test_an_impossible_day_with_a_weekday_still_runs),
	UNIT(test_next_occurrences_match_python_zoneinfo),
	UNIT(test_a_loaded_utc_zone_agrees_with_null),
	UNIT(test_next_is_strictly_after_and_a_whole_minute),
	UNIT(test_an_expression_that_never_matches_gives_up),
	UNIT(test_instants_outside_the_calendar_are_refused),
};

int
main(void)
{
	return unit_run("cron", tests, UNIT_COUNT(tests));
}
