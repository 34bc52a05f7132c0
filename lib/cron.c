/*
 * cron.c: cron expressions, the schedule a recurring message follows.
 * The classic five fields (Vixie cron's dialect, minus what needs a
 * system: no @reboot, no seconds or years), parsed strictly into one
 * bitmask per field, and the next occurrence after an instant, read on
 * the wall clock of an IANA zone (tz.c).
 *
 * Choices where the contract is silent:
 * - A field is unrestricted only when it is "*" alone: "*\/2" or "1-31" in
 *   the day of the month count as restricted, so with a restricted day of
 *   the week the two are ORed (POSIX; Vixie cron treats any field that
 *   starts with "*" as unrestricted).
 * - A range is numbers or names, not both ("mon-5" is refused); lists may
 *   mix them. In the day of the week "sun" ends a range as 7, so "fri-sun"
 *   is Friday to Sunday.
 * - A step is 1 up to the field's largest value; "a/n" means a-max/n.
 * - Names and macros are case-insensitive; blanks (spaces, tabs) may
 *   surround the expression.
 * - An expression whose days never exist ("0 0 30 2 *", "0 0 31 4 *") is
 *   refused when parsed, rather than accepted to never run.
 * - A whole minute of local time that the zone skips fires once at the
 *   end of the gap; one that happens twice fires at its first instant.
 */
#include <stdio.h>
#include <string.h>

#include "postdate.h"

#define SECONDS_PER_DAY 86400
/* The longest wait of an expression that parses is 29 February across a
 * century that is not a leap year (2096 to 2104): search ten years. */
#define CRON_HORIZON_DAYS 3653
/* Instants cron_next accepts: the years 0001 to 9989, so that the
 * horizon's arithmetic never leaves the calendar RFC 3339 writes. */
#define CRON_MIN_MS (-62135596800000LL)
#define CRON_MAX_MS (253086767999999LL)

/* One field: its bounds, its names (index 0 is the value min), and the
 * sentences for what can be wrong with it. */
struct cron_field {
	int min, max;
	const char *const *names;
	const char *empty, *junk, *range, *step_zero, *step_range, *step_digits,
	    *range_end, *reversed, *mixed, *bad_name;
};

#define FIELD_WHYS(label, bounds) \
	"the " label " field: a list has an empty item", \
	"the " label " field: unexpected text (use numbers, *, lists a,b, ranges a-b and steps /n)", \
	"the " label " field: a number is out of range " bounds, \
	"the " label " field: a step of 0 is not allowed", \
	"the " label " field: a step is larger than the field's largest value (" bounds ")", \
	"the " label " field: a step needs a number after the /", \
	"the " label " field: a range needs a value after the -", \
	"the " label " field: a range goes backwards (write the lower value first)", \
	"the " label " field: a range mixes a name and a number"

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL,
};
static const char *const weekday_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL,
};

enum { F_MINUTE, F_HOUR, F_DAY, F_MONTH, F_WEEKDAY, F_COUNT };

static const struct cron_field fields[F_COUNT] = {
	{ 0, 59, NULL, FIELD_WHYS("minute", "0-59"), NULL },
	{ 0, 23, NULL, FIELD_WHYS("hour", "0-23"), NULL },
	{ 1, 31, NULL, FIELD_WHYS("day-of-month", "1-31"), NULL },
	{ 1, 12, month_names, FIELD_WHYS("month", "1-12"),
	  "the month field: not a month name (jan..dec)" },
	{ 0, 7, weekday_names, FIELD_WHYS("day-of-week", "0-7"),
	  "the day-of-week field: not a day name (sun..sat)" },
};

/* The macros, as the five fields they stand for. */
static const struct {
	const char *name, *fields;
} macros[] = {
	{ "@hourly", "0 * * * *" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@monthly", "0 0 1 * *" },
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
};

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether the n bytes at p are word, ignoring case. */
static int
same_word(const char *p, size_t n, const char *word)
{
	if (strlen(word) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(p[i]) != word[i])
			return 0;
	return 1;
}

/* A number or a name at *p (which ends at end), advanced past it; *named
 * says which it was. Digits stop counting past 9999, which is out of every
 * range anyway, so no run of digits overflows. */
static int
read_value(const struct cron_field *f, const char **p, const char *end, int *out, int *named,
           const char **why)
{
	const char *s = *p;

	if (s < end && is_digit(*s)) {
		int v = 0;

		while (s < end && is_digit(*s)) {
			if (v <= 9999)
				v = v * 10 + (*s - '0');
			s++;
		}
		if (v < f->min || v > f->max) {
			*why = f->range;
			return -1;
		}
		*p = s;
		*out = v;
		*named = 0;
		return 0;
	}
	if (s < end && is_letter(*s)) {
		while (s < end && is_letter(*s))
			s++;
		if (f->names == NULL) {
			*why = f->junk;
			return -1;
		}
		for (int i = 0; f->names[i] != NULL; i++) {
			if (same_word(*p, (size_t)(s - *p), f->names[i])) {
				*p = s;
				*out = f->min + i;
				*named = 1;
				return 0;
			}
		}
		*why = f->bad_name;
		return -1;
	}
	*why = f->junk;
	return -1;
}

/*
 * One item of a list: "*", "a", "a-b", each optionally "/n". Adds its
 * values to *mask. Returns the bytes consumed up to the next ',' or end.
 */
static int
parse_item(const struct cron_field *f, int which, const char **p, const char *end,
           uint64_t *mask, const char **why)
{
	int lo = f->min, hi = f->max, step = 1, named = 0, hi_named = 0;
	const char *s = *p;

	if (s == end || *s == ',') {
		*why = f->empty;
		return -1;
	}
	if (*s == '*') {
		s++;
	} else {
		if (read_value(f, &s, end, &lo, &named, why) != 0)
			return -1;
		hi = lo;
		if (s < end && *s == '-') {
			s++;
			if (s == end || *s == ',' || *s == '/') {
				*why = f->range_end;
				return -1;
			}
			if (read_value(f, &s, end, &hi, &hi_named, why) != 0)
				return -1;
			if (named != hi_named) {
				*why = f->mixed;
				return -1;
			}
			/* "fri-sun": Sunday as the end of a range is day 7. */
			if (which == F_WEEKDAY && hi_named && hi == 0)
				hi = 7;
			if (hi < lo) {
				*why = f->reversed;
				return -1;
			}
		} else if (s < end && *s == '/') {
			hi = f->max;      /* "a/n" is "a-max/n", as in Vixie cron */
		}
	}
	if (s < end && *s == '/') {
		int v = 0;

		s++;
		if (s == end || !is_digit(*s)) {
			*why = f->step_digits;
			return -1;
		}
		while (s < end && is_digit(*s)) {
			if (v <= 9999)
				v = v * 10 + (*s - '0');
			s++;
		}
		if (v == 0) {
			*why = f->step_zero;
			return -1;
		}
		if (v > f->max) {
			*why = f->step_range;
			return -1;
		}
		step = v;
	}
	if (s < end && *s != ',') {
		*why = f->junk;
		return -1;
	}
	for (int v = lo; v <= hi; v += step)
		*mask |= (uint64_t)1 << (which == F_WEEKDAY ? v % 7 : v);
	*p = s;
	return 0;
}

/* A whole field, the bytes from p to end: a comma-separated list. */
static int
parse_field(int which, const char *p, const char *end, uint64_t *mask, int *restricted,
            const char **why)
{
	const struct cron_field *f = &fields[which];

	*mask = 0;
	*restricted = !(end - p == 1 && *p == '*');
	for (;;) {
		if (parse_item(f, which, &p, end, mask, why) != 0)
			return -1;
		if (p == end)
			return 0;
		p++;                  /* the ',' */
		if (p == end) {
			*why = f->empty;
			return -1;
		}
	}
}

static int
is_leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

/* Whether some chosen month has some chosen day in some year. Only the
 * day of the month can make an expression empty: hours and minutes always
 * have a value, and a restricted day of the week meets every month. */
static int
days_can_happen(const struct pd_cron *c)
{
	if (c->weekdays_restricted && c->days_restricted)
		return 1;
	for (int m = 1; m <= 12; m++) {
		/* 2000 is a leap year: the longest February. */
		int longest = days_in_month(2000, m);

		if ((c->months >> m & 1) && (c->days & ((((uint32_t)2 << longest) - 1) & ~1u)))
			return 1;
	}
	return 0;
}

/* Splits the text into fields and parses each. */
static int
parse_fields(const char *text, struct pd_cron *out, const char **why)
{
	const char *start[F_COUNT], *stop[F_COUNT];
	const char *p = text;
	int n = 0;
	uint64_t mask[F_COUNT];
	int restricted[F_COUNT];

	while (*p != '\0') {
		while (is_blank(*p))
			p++;
		if (*p == '\0')
			break;
		if (n < F_COUNT)
			start[n] = p;
		while (*p != '\0' && !is_blank(*p))
			p++;
		if (n < F_COUNT)
			stop[n] = p;
		n++;
	}
	if (n == F_COUNT + 1) {
		*why = "six fields: postdate's cron has no seconds or years field " \
		       "(five fields: minute hour day-of-month month day-of-week)";
		return -1;
	}
	if (n > F_COUNT) {
		*why = "too many fields: a cron expression has five " \
		       "(minute hour day-of-month month day-of-week)";
		return -1;
	}
	if (n == 0) {
		*why = "the cron expression is empty";
		return -1;
	}
	if (n < F_COUNT) {
		*why = "too few fields: a cron expression has five " \
		       "(minute hour day-of-month month day-of-week)";
		return -1;
	}
	for (int i = 0; i < F_COUNT; i++)
		if (parse_field(i, start[i], stop[i], &mask[i], &restricted[i], why) != 0)
			return -1;
	out->minutes = mask[F_MINUTE];
	out->hours = (uint32_t)mask[F_HOUR];
	out->days = (uint32_t)mask[F_DAY];
	out->months = (uint16_t)mask[F_MONTH];
	out->weekdays = (uint8_t)mask[F_WEEKDAY];
	out->days_restricted = (uint8_t)restricted[F_DAY];
	out->weekdays_restricted = (uint8_t)restricted[F_WEEKDAY];
	if (!days_can_happen(out)) {
		*why = "the day-of-month and month fields never meet: no chosen month has " \
		       "a chosen day, so it would never run";
		return -1;
	}
	return 0;
}

int
cron_parse(const char *text, struct pd_cron *out, const char **why)
{
	size_t len = strnlen(text, PD_MAX_CRON + 1);
	const char *p = text, *end;
	struct pd_cron parsed;

	if (len > PD_MAX_CRON) {
		*why = "the cron expression is too long: at most 256 bytes";
		return -1;
	}
	while (is_blank(*p))
		p++;
	if (*p == '@') {
		end = p;
		while (*end != '\0' && !is_blank(*end))
			end++;
		for (const char *q = end; *q != '\0'; q++) {
			if (!is_blank(*q)) {
				*why = "a macro such as @daily stands alone, with no fields after it";
				return -1;
			}
		}
		if (same_word(p, (size_t)(end - p), "@reboot")) {
			*why = "@reboot is not supported: a recurring message needs a time of day";
			return -1;
		}
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (same_word(p, (size_t)(end - p), macros[i].name))
				return parse_fields(macros[i].fields, out, why);
		*why = "unknown macro: use @hourly, @daily (@midnight), @weekly, @monthly " \
		       "or @yearly (@annually)";
		return -1;
	}
	if (parse_fields(p, &parsed, why) != 0)
		return -1;
	*out = parsed;
	return 0;
}

/* Appends the values set in mask between lo and hi to buf as a list of
 * numbers and runs ("1-5,7"), or "*" for an unrestricted field. */
static size_t
format_field(uint64_t mask, int lo, int hi, int restricted, char *buf, size_t at, size_t len)
{
	int first = 1;

	if (!restricted)
		return at + (size_t)snprintf(buf + at, len - at, "*");
	for (int v = lo; v <= hi; v++) {
		int run = v;

		if (!(mask >> v & 1))
			continue;
		while (run + 1 <= hi && (mask >> (run + 1) & 1))
			run++;
		if (run - v >= 2)
			at += (size_t)snprintf(buf + at, len - at, "%s%d-%d", first ? "" : ",", v, run);
		else if (run > v)
			at += (size_t)snprintf(buf + at, len - at, "%s%d,%d", first ? "" : ",", v, run);
		else
			at += (size_t)snprintf(buf + at, len - at, "%s%d", first ? "" : ",", v);
		first = 0;
		v = run;
	}
	return at;
}

char *
cron_format(const struct pd_cron *c, char *buf)
{
	size_t at = 0;

	/* A full minute, hour or month field is "*"; a day field is "*" only
	 * when it was, since that decides the OR rule. */
	at = format_field(c->minutes, 0, 59, c->minutes != (1ULL << 60) - 1, buf, at, PD_CRON_BUF);
	buf[at++] = ' ';
	at = format_field(c->hours, 0, 23, c->hours != 0xffffffu, buf, at, PD_CRON_BUF);
	buf[at++] = ' ';
	at = format_field(c->days, 1, 31, c->days_restricted, buf, at, PD_CRON_BUF);
	buf[at++] = ' ';
	at = format_field(c->months, 1, 12, c->months != 0x1ffeu, buf, at, PD_CRON_BUF);
	buf[at++] = ' ';
	format_field(c->weekdays, 0, 6, c->weekdays_restricted, buf, at, PD_CRON_BUF);
	return buf;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Whether the local calendar day (days since 1970-01-01) matches: its
 * month, and its day of the month and of the week by cron's rule. */
static int
day_matches(const struct pd_cron *c, int64_t day)
{
	int y, m, d, weekday = (int)(((day % 7) + 7 + 4) % 7);   /* 1970-01-01: Thursday */
	int by_day, by_weekday;

	civil_from_days(day, &y, &m, &d);
	if (!(c->months >> m & 1))
		return 0;
	by_day = c->days >> d & 1;
	by_weekday = c->weekdays >> weekday & 1;
	/* Both restricted: either will do. One "*": its mask is full, so
	 * only the other decides. */
	if (c->days_restricted && c->weekdays_restricted)
		return by_day || by_weekday;
	return by_day && by_weekday;
}

/* The lowest bit of mask at position from or above, or -1. */
static int
next_bit(uint64_t mask, int from)
{
	if (from > 63)
		return -1;
	mask >>= from;
	return mask == 0 ? -1 : from + __builtin_ctzll(mask);
}

/* The instant (UTC seconds) at which the local minute fires: the first
 * when it happens twice, the end of the gap when it is skipped. */
static int64_t
local_minute_fires_at(const struct pd_tz *zone, int64_t local)
{
	int64_t utc = local;

	if (zone != NULL)
		tz_local_to_utc(zone, local, &utc);
	return utc;
}

/*
 * The local minute of a matching day that fires first after the instant
 * after. Local minutes fire in their order (a later minute never fires
 * before an earlier one), so the search starts at the reading of after
 * on the wall clock and walks forward: day by day, then from hour to
 * matching hour and minute to matching minute, skipping the few that fire
 * at or before after (those of the reading's own minute, and of the second
 * pass of a repeated hour).
 */
int
cron_next(const struct pd_cron *c, const struct pd_tz *zone, pd_ms after, pd_ms *out,
          const char **why)
{
	int64_t after_s, reading, day, first_day;
	int from_hour, from_minute;

	if (after < CRON_MIN_MS || after > CRON_MAX_MS) {
		*why = "the instant is outside the years 0001 to 9989";
		return -1;
	}
	after_s = floor_div(after, PD_MS_PER_S);
	reading = after_s + (zone != NULL ? tz_offset_at(zone, after_s) : 0);
	first_day = day = floor_div(reading, SECONDS_PER_DAY);
	from_hour = (int)(reading - day * SECONDS_PER_DAY) / 3600;
	from_minute = (int)(reading - day * SECONDS_PER_DAY) / 60 % 60;
	for (; day <= first_day + CRON_HORIZON_DAYS; day++) {
		int h0 = day == first_day ? from_hour : 0;

		if (!day_matches(c, day))
			continue;
		for (int h = next_bit(c->hours, h0); h >= 0 && h < 24; h = next_bit(c->hours, h + 1)) {
			int m0 = day == first_day && h == from_hour ? from_minute : 0;

			for (int m = next_bit(c->minutes, m0); m >= 0 && m < 60;
			     m = next_bit(c->minutes, m + 1)) {
				int64_t local = day * SECONDS_PER_DAY + h * 3600 + m * 60;
				int64_t utc = local_minute_fires_at(zone, local);

				if (utc * PD_MS_PER_S > after) {
					*out = utc * PD_MS_PER_S;
					return 0;
				}
			}
		}
	}
	*why = "the cron expression has no occurrence in the next ten years";
	return -1;
}
