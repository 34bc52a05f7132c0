/*
 * timeparse.c: times and durations as users write them, parsed strictly.
 * Digits are walked by hand with explicit counts and every range is
 * checked; UTC arithmetic is our own (days from civil), and IANA zones
 * are read from the system's zoneinfo files by tz.c (never through TZ,
 * which is process-wide).
 *
 * Choices where the contract is silent:
 * - A leap second (:60) is refused: Unix time cannot represent it, and
 *   folding it to :59 would quietly move the user's instant.
 * - "YYYY-MM-DDTHH:MM[:SS]" without Z or an offset is the local form (UTC,
 *   or the zone tz names), exactly like the form with a space.
 * - The local form takes no fractions of a second.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "postdate.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo/"
#define SECONDS_PER_DAY 86400
#define MS_PER_DAY (SECONDS_PER_DAY * PD_MS_PER_S)
#define MAX_DURATION_MS (3650 * MS_PER_DAY)   /* ten years */
#define DURATION_MAX_DIGITS 9
#define UNIX_MAX_DIGITS 12
/* RFC 3339 years have four digits: 0000-01-01T00:00:00Z to the end of 9999. */
#define TIME_MIN_MS (-62167219200000LL)
#define TIME_MAX_MS (253402300799999LL)

#define WHY_EMPTY_TIME "the time is empty"
#define WHY_TIME_SHAPE "not a valid time: use RFC 3339 (2026-11-22T13:30:00Z), " \
	"YYYY-MM-DD HH:MM[:SS] or Unix seconds"
#define WHY_DURATION_SHAPE "not a valid duration: use 90, 90s, 15m, 2h, 7d or 1h30m"

/* The current time. */
pd_ms
time_now(void)
{
	struct timespec ts = { 0, 0 };

	clock_gettime(CLOCK_REALTIME, &ts);
	return (pd_ms)ts.tv_sec * PD_MS_PER_S + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant). */
void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Whether year y of the Gregorian calendar has a February 29. */
static int
is_leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* How many days month m (1-12) of year y has. */
static int
days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

/*
 * Writes t as "YYYY-MM-DDTHH:MM:SS.mmmZ". Times before 1970 floor towards
 * the earlier day so the time of day stays positive; outside the years
 * 0000-9999 the year simply has a sign or more digits, which still fits.
 */
/* Writes v (0 <= v < 10^n) as n digits. */
static void
put_digits(char *out, int v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		out[i] = (char)('0' + v % 10);
}

char *
time_format(pd_ms t, char *buf)
{
	int64_t days = t / MS_PER_DAY, ms = t % MS_PER_DAY;
	int y, mo, d;

	if (ms < 0) {
		ms += MS_PER_DAY;
		days--;
	}
	civil_from_days(days, &y, &mo, &d);
	if (y < 0 || y > 9999) {
		snprintf(buf, PD_TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d,
		         (int)(ms / 3600000), (int)(ms / 60000 % 60), (int)(ms / 1000 % 60),
		         (int)(ms % 1000));
		return buf;
	}
	/* By hand: every message rendered formats three or four times, and
	 * snprintf was a tenth of a receive's instructions. */
	put_digits(buf, y, 4);
	buf[4] = '-';
	put_digits(buf + 5, mo, 2);
	buf[7] = '-';
	put_digits(buf + 8, d, 2);
	buf[10] = 'T';
	put_digits(buf + 11, (int)(ms / 3600000), 2);
	buf[13] = ':';
	put_digits(buf + 14, (int)(ms / 60000 % 60), 2);
	buf[16] = ':';
	put_digits(buf + 17, (int)(ms / 1000 % 60), 2);
	buf[19] = '.';
	put_digits(buf + 20, (int)(ms % 1000), 3);
	buf[23] = 'Z';
	buf[24] = '\0';
	return buf;
}

/* Reads exactly n digits at *p into *out and advances *p past them.
 * Stops at the first non-digit, so it never reads past a NUL. */
static int
digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Reads the single character c at *p and advances *p past it. */
static int
literal(const char **p, char c)
{
	if (**p != c)
		return -1;
	(*p)++;
	return 0;
}

struct civil {
	int year, month, day, hour, minute, second, ms;
};

/* Checks that c names a real date and time of day; on failure sets *why. */
static int
civil_check(const struct civil *c, const char **why)
{
	if (c->month < 1 || c->month > 12) {
		*why = "not a valid date: the month must be 01 to 12";
		return -1;
	}
	if (c->day < 1 || c->day > 31) {
		*why = "not a valid date: the day must be 01 to 31";
		return -1;
	}
	if (c->day > days_in_month(c->year, c->month)) {
		*why = c->month == 2 && c->day == 29 ?
		    "not a valid date: February 29 exists only in leap years" :
		    "not a valid date: that month does not have that many days";
		return -1;
	}
	if (c->hour > 23) {
		*why = "not a valid time: the hour must be 00 to 23";
		return -1;
	}
	if (c->minute > 59) {
		*why = "not a valid time: the minute must be 00 to 59";
		return -1;
	}
	if (c->second == 60) {
		*why = "not a valid time: a leap second (:60) cannot be scheduled";
		return -1;
	}
	if (c->second > 59) {
		*why = "not a valid time: the second must be 00 to 59";
		return -1;
	}
	return 0;
}

/*
 * Reads "YYYY-MM-DD", one separator from seps, "HH:MM", and ":SS" (which
 * may be left out if seconds_optional), then checks every range. Advances
 * *p past what it read.
 */
static int
parse_civil(const char **p, const char *seps, int seconds_optional, struct civil *c,
            const char **why)
{
	const char *s = *p;

	memset(c, 0, sizeof(*c));
	if (digits(&s, 4, &c->year) != 0 || literal(&s, '-') != 0 ||
	    digits(&s, 2, &c->month) != 0 || literal(&s, '-') != 0 ||
	    digits(&s, 2, &c->day) != 0) {
		*why = WHY_TIME_SHAPE;
		return -1;
	}
	/* strchr would match the terminating NUL, so test for it first. */
	if (*s == '\0' || strchr(seps, *s) == NULL) {
		*why = WHY_TIME_SHAPE;
		return -1;
	}
	s++;
	if (digits(&s, 2, &c->hour) != 0 || literal(&s, ':') != 0 ||
	    digits(&s, 2, &c->minute) != 0) {
		*why = WHY_TIME_SHAPE;
		return -1;
	}
	if (literal(&s, ':') == 0) {
		if (digits(&s, 2, &c->second) != 0) {
			*why = "not a valid time: the seconds must be two digits";
			return -1;
		}
	} else if (!seconds_optional) {
		*why = "not a valid time: RFC 3339 needs seconds (HH:MM:SS)";
		return -1;
	}
	if (civil_check(c, why) != 0)
		return -1;
	*p = s;
	return 0;
}

/* Seconds since the epoch of c read as UTC, ignoring c->ms. */
static int64_t
civil_to_seconds(const struct civil *c)
{
	return days_from_civil(c->year, c->month, c->day) * SECONDS_PER_DAY +
	    c->hour * 3600 + c->minute * 60 + c->second;
}

/* Stores t in *out when it falls within the years 0000 to 9999 (UTC), the
 * only ones that RFC 3339, and so status and the page, can show. */
static int
time_in_range(pd_ms t, pd_ms *out, const char **why)
{
	if (t < TIME_MIN_MS || t > TIME_MAX_MS) {
		*why = t < TIME_MIN_MS ?
		    "the time is before the year 0000 (UTC)" :
		    "the time is after the year 9999 (UTC)";
		return -1;
	}
	*out = t;
	return 0;
}

/* Milliseconds since the epoch of c read as UTC. */
static pd_ms
civil_to_ms(const struct civil *c)
{
	return civil_to_seconds(c) * PD_MS_PER_S + c->ms;
}

/* RFC 3339 with Z or an offset; fractions of any length, truncated to ms. */
int
timeparse_rfc3339(const char *text, pd_ms *out, const char **why)
{
	const char *p = text;
	struct civil c;
	int sign, oh, om, frac_digits = 0;

	if (text == NULL || *text == '\0') {
		*why = WHY_EMPTY_TIME;
		return -1;
	}
	if (parse_civil(&p, "Tt ", 0, &c, why) != 0)
		return -1;
	/* Only the first three digits count; the rest are read and dropped. */
	if (literal(&p, '.') == 0) {
		for (; *p >= '0' && *p <= '9'; p++, frac_digits++)
			if (frac_digits < 3)
				c.ms = c.ms * 10 + (*p - '0');
		if (frac_digits == 0) {
			*why = "not a valid time: a fraction needs digits after the dot";
			return -1;
		}
		for (; frac_digits < 3; frac_digits++)
			c.ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		if (p[1] != '\0') {
			*why = "not a valid time: unexpected text after the Z";
			return -1;
		}
		return time_in_range(civil_to_ms(&c), out, why);
	}
	if (*p != '+' && *p != '-') {
		*why = "not a valid time: RFC 3339 needs Z or an offset such as +01:00";
		return -1;
	}
	sign = *p++ == '-' ? -1 : 1;
	if (digits(&p, 2, &oh) != 0 || literal(&p, ':') != 0 || digits(&p, 2, &om) != 0 ||
	    oh > 23 || om > 59) {
		*why = "not a valid time: the offset must be +HH:MM or -HH:MM";
		return -1;
	}
	if (*p != '\0') {
		*why = "not a valid time: unexpected text after the offset";
		return -1;
	}
	return time_in_range(civil_to_ms(&c) - sign * (oh * 3600 + om * 60) * PD_MS_PER_S, out,
	    why);
}

/*
 * Whether tz names a zone in the system's zoneinfo. glibc silently falls
 * back to UTC for a name it cannot load, so the name is checked here:
 * a safe relative path to a regular file that starts with the TZif magic
 * (zoneinfo also holds tables such as "leapseconds"). The "right/" zones
 * count leap seconds in time_t and would put every time 27 s off.
 */
int
timezone_exists(const char *tz)
{
	char path[sizeof(ZONEINFO_DIR) + PD_MAX_TIME_TEXT];
	char magic[4];
	struct stat st;
	size_t len;
	int fd, ok;

	if (tz == NULL || (len = strlen(tz)) == 0 || len > PD_MAX_TIME_TEXT || tz[0] == '/' ||
	    strstr(tz, "..") != NULL || strncmp(tz, "right/", 6) == 0)
		return 0;
	for (const char *p = tz; *p != '\0'; p++) {
		char ch = *p;

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '+' || ch == '-' || ch == '/'))
			return 0;
	}
	snprintf(path, sizeof(path), ZONEINFO_DIR "%s", tz);
	/* O_NONBLOCK so that a FIFO, were one there, cannot hang the open. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return 0;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
	    memcmp(magic, "TZif", sizeof(magic)) == 0;
	close(fd);
	return ok;
}

/*
 * Converts c, a local time in zone tz (already checked by
 * timezone_exists), to UTC from the zone's TZif file (tz.c): a time the
 * clocks skip is an error, and one they show twice means the first.
 */
static int
zone_to_ms(const struct civil *c, const char *tz, pd_ms *out, const char **why)
{
	struct pd_tz *zone;
	int64_t utc;
	enum tz_local kind;

	if (tz_load(tz, &zone) != 0) {
		*why = "not a time zone known to this system (use an IANA name such as Europe/Berlin)";
		return -1;
	}
	kind = tz_local_to_utc(zone, civil_to_seconds(c), &utc);
	tz_free(zone);
	if (kind == TZ_LOCAL_SKIPPED) {
		*why = "that local time does not exist in that time zone (the clocks skip it)";
		return -1;
	}
	return time_in_range((pd_ms)utc * PD_MS_PER_S, out, why);
}

/* "YYYY-MM-DD HH:MM[:SS]" ('T' for the space too) in zone tz, or UTC. */
int
timeparse_local(const char *text, const char *tz, pd_ms *out, const char **why)
{
	const char *p = text;
	struct civil c;

	if (text == NULL || *text == '\0') {
		*why = WHY_EMPTY_TIME;
		return -1;
	}
	if (parse_civil(&p, " Tt", 1, &c, why) != 0)
		return -1;
	if (*p == '.') {
		*why = "not a valid time: YYYY-MM-DD HH:MM[:SS] takes no fractions of a second";
		return -1;
	}
	if (*p != '\0') {
		*why = "not a valid time: unexpected text after the time";
		return -1;
	}
	if (tz == NULL || *tz == '\0')
		return time_in_range(civil_to_ms(&c), out, why);
	if (!timezone_exists(tz)) {
		*why = "not a time zone known to this system (use an IANA name such as Europe/Berlin)";
		return -1;
	}
	return zone_to_ms(&c, tz, out, why);
}

/* Unix seconds: 1 to 12 ASCII digits, nothing else. */
int
timeparse_unix(const char *text, pd_ms *out, const char **why)
{
	int64_t v = 0;
	size_t n;

	if (text == NULL || *text == '\0') {
		*why = WHY_EMPTY_TIME;
		return -1;
	}
	/* Twelve digits keep v * 1000 far inside int64_t; the year 9999 ends
	 * well before the largest twelve-digit number. */
	for (n = 0; text[n] != '\0'; n++) {
		if (text[n] < '0' || text[n] > '9') {
			*why = "not valid Unix seconds: use digits only";
			return -1;
		}
		if (n == UNIX_MAX_DIGITS) {
			*why = "Unix seconds out of range: at most 12 digits";
			return -1;
		}
		v = v * 10 + (text[n] - '0');
	}
	return time_in_range(v * PD_MS_PER_S, out, why);
}

/* Whether text looks like a time with Z or an offset: after the date,
 * a zone letter or a sign (the date's own dashes come before). */
static int
has_zone_designator(const char *text, size_t len)
{
	return len > 10 && strpbrk(text + 10, "Zz+-") != NULL;
}

/*
 * Any time form, chosen by shape: all digits are Unix seconds; with Z or
 * an offset it is RFC 3339; anything else is the local form, which takes
 * "YYYY-MM-DDTHH:MM:SS" without an offset too (as local time in tz or UTC).
 */
int
timeparse_at(const char *text, const char *tz, pd_ms *out, const char **why)
{
	size_t len = text != NULL ? strlen(text) : 0;
	int has_tz = tz != NULL && *tz != '\0';
	int all_digits = len > 0;
	pd_ms t;

	if (len == 0) {
		*why = WHY_EMPTY_TIME;
		return -1;
	}
	if (len > PD_MAX_TIME_TEXT) {
		*why = "the time is too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if (text[i] < '0' || text[i] > '9')
			all_digits = 0;
	if (!all_digits && !has_zone_designator(text, len))
		return timeparse_local(text, tz, out, why);
	/* Parse first, so malformed text gets its own reason rather than tz's. */
	if ((all_digits ? timeparse_unix(text, &t, why) : timeparse_rfc3339(text, &t, why)) != 0)
		return -1;
	if (has_tz) {
		*why = "tz applies only to a YYYY-MM-DD HH:MM[:SS] time";
		return -1;
	}
	*out = t;
	return 0;
}

/*
 * "90" (seconds), or numbers with units d, h, m, s in that order, each at
 * most once: "1d2h3m4s". Each number has 1 to 9 digits; the total is at
 * most ten years, checked before each addition so nothing can overflow.
 */
int
timeparse_duration(const char *text, pd_ms *out, const char **why)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = {
		{ 'd', MS_PER_DAY }, { 'h', 3600 * PD_MS_PER_S },
		{ 'm', 60 * PD_MS_PER_S }, { 's', PD_MS_PER_S },
	};
	const size_t nunits = sizeof(units) / sizeof(units[0]);
	const char *p = text;
	int64_t total = 0;
	size_t next_unit = 0;

	if (text == NULL || *text == '\0') {
		*why = "the duration is empty";
		return -1;
	}
	while (*p != '\0') {
		int64_t n = 0;
		size_t u;
		int nd = 0;

		for (; *p >= '0' && *p <= '9'; p++) {
			if (++nd > DURATION_MAX_DIGITS) {
				*why = "not a valid duration: a number may have at most 9 digits";
				return -1;
			}
			n = n * 10 + (*p - '0');
		}
		if (nd == 0) {
			*why = WHY_DURATION_SHAPE;
			return -1;
		}
		/* Bare digits are seconds, but only as the whole text. */
		if (*p == '\0' && p - nd == text) {
			u = nunits - 1;
		} else {
			for (u = 0; u < nunits && units[u].unit != *p; u++)
				continue;
			if (*p == '\0') {
				*why = "not a valid duration: each number after the first needs "
				       "a unit (d, h, m or s)";
				return -1;
			}
			if (u == nunits) {
				*why = WHY_DURATION_SHAPE;
				return -1;
			}
			if (u < next_unit) {
				*why = "not a valid duration: units go d, h, m, s, "
				       "largest first, each at most once";
				return -1;
			}
			p++;
		}
		if (n > (MAX_DURATION_MS - total) / units[u].ms) {
			*why = "the duration is longer than ten years";
			return -1;
		}
		total += n * units[u].ms;
		next_unit = u + 1;
	}
	*out = total;
	return 0;
}
