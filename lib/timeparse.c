/*
 * timeparse.c: times and durations as users write them, parsed strictly.
 * Digits are walked by hand with explicit counts and every range is
 * checked; UTC arithmetic is our own (days from civil), and only the IANA
 * zone conversion goes through the C library and the system's zoneinfo.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "postdate.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo/"
#define MAX_DURATION_MS (3650LL * 86400 * 1000)  /* ten years */

pd_ms
time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (pd_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
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

static void
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

static int
days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

char *
time_format(pd_ms t, char *buf)
{
	int64_t days = t / 86400000, ms = t % 86400000;
	int y, mo, d;

	if (ms < 0) {
		ms += 86400000;
		days--;
	}
	civil_from_days(days, &y, &mo, &d);
	snprintf(buf, PD_TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d,
	         (int)(ms / 3600000), (int)(ms / 60000 % 60), (int)(ms / 1000 % 60),
	         (int)(ms % 1000));
	return buf;
}

/* Reads exactly n digits at *p into *out and advances *p. */
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

struct civil {
	int year, month, day, hour, minute, second, ms;
};

/* "YYYY-MM-DD" then a separator in seps, "HH:MM", and ":SS" unless
 * seconds are optional; advances *p past what it read. */
static int
parse_civil(const char **p, const char *seps, int seconds_optional, struct civil *c,
            const char **why)
{
	const char *s = *p;

	memset(c, 0, sizeof(*c));
	if (digits(&s, 4, &c->year) != 0 || *s++ != '-' || digits(&s, 2, &c->month) != 0 ||
	    *s++ != '-' || digits(&s, 2, &c->day) != 0 || *s == '\0' ||
	    strchr(seps, *s) == NULL || (s++, digits(&s, 2, &c->hour) != 0) ||
	    *s++ != ':' || digits(&s, 2, &c->minute) != 0) {
		*why = "not a valid time: use RFC 3339 (2026-11-22T13:30:00Z), "
		       "YYYY-MM-DD HH:MM[:SS] or Unix seconds";
		return -1;
	}
	if (*s == ':') {
		s++;
		if (digits(&s, 2, &c->second) != 0) {
			*why = "not a valid time: seconds must be two digits";
			return -1;
		}
	} else if (!seconds_optional) {
		*why = "not a valid time: RFC 3339 needs seconds (HH:MM:SS)";
		return -1;
	}
	if (c->month < 1 || c->month > 12) {
		*why = "not a valid date: the month must be 01 to 12";
		return -1;
	}
	if (c->day < 1 || c->day > days_in_month(c->year, c->month)) {
		*why = "not a valid date: that month has no such day";
		return -1;
	}
	/* A leap second (:60) is not representable in Unix time: refused. */
	if (c->hour > 23 || c->minute > 59 || c->second > 59) {
		*why = "not a valid time of day";
		return -1;
	}
	*p = s;
	return 0;
}

static pd_ms
civil_to_ms(const struct civil *c)
{
	return (days_from_civil(c->year, c->month, c->day) * 86400 + c->hour * 3600 +
	        c->minute * 60 + c->second) * 1000 + c->ms;
}

int
timeparse_rfc3339(const char *text, pd_ms *out, const char **why)
{
	const char *p = text;
	struct civil c;
	int sign, oh, om, frac_digits = 0;

	if (text == NULL || *text == '\0') {
		*why = "the time is empty";
		return -1;
	}
	if (parse_civil(&p, "Tt ", 0, &c, why) != 0)
		return -1;
	/* Fractions of any length; milliseconds kept, the rest truncated. */
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (frac_digits < 3)
				c.ms = c.ms * 10 + (*p - '0');
			frac_digits++;
			p++;
		}
		if (frac_digits == 0) {
			*why = "not a valid time: a fraction needs digits after the dot";
			return -1;
		}
		for (; frac_digits < 3; frac_digits++)
			c.ms *= 10;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		*out = civil_to_ms(&c);
		return 0;
	}
	if (*p != '+' && *p != '-') {
		*why = "not a valid time: RFC 3339 needs Z or an offset such as +01:00";
		return -1;
	}
	sign = *p++ == '-' ? -1 : 1;
	if (digits(&p, 2, &oh) != 0 || *p++ != ':' || digits(&p, 2, &om) != 0 || *p != '\0' ||
	    oh > 23 || om > 59) {
		*why = "not a valid time: the offset must be +HH:MM or -HH:MM";
		return -1;
	}
	*out = civil_to_ms(&c) - sign * (oh * 3600 + om * 60) * 1000LL;
	return 0;
}

int
timezone_exists(const char *tz)
{
	char path[sizeof(ZONEINFO_DIR) + PD_MAX_TIME_TEXT];
	struct stat st;
	size_t len;

	if (tz == NULL || (len = strlen(tz)) == 0 || len > PD_MAX_TIME_TEXT || tz[0] == '/' ||
	    strstr(tz, "..") != NULL)
		return 0;
	/* glibc falls back to UTC for a name it cannot find, so check first. */
	for (const char *p = tz; *p; p++) {
		char ch = *p;

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '+' || ch == '-' || ch == '/'))
			return 0;
	}
	snprintf(path, sizeof(path), ZONEINFO_DIR "%s", tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether local time t in the current TZ reads exactly as c. */
static int
local_matches(time_t t, const struct civil *c)
{
	struct tm tm;

	return localtime_r(&t, &tm) != NULL && tm.tm_year + 1900 == c->year &&
	       tm.tm_mon + 1 == c->month && tm.tm_mday == c->day && tm.tm_hour == c->hour &&
	       tm.tm_min == c->minute && tm.tm_sec == c->second;
}

/* The first instant whose local time in tz reads as c, via mktime under
 * TZ=tz. Both DST guesses are tried: in an overlap both match and the
 * earlier wins; in a gap neither does. */
static int
zone_to_ms(const struct civil *c, const char *tz, pd_ms *out, const char **why)
{
	char *saved = NULL;
	const char *old;
	time_t best = 0;
	int found = 0;

	pthread_mutex_lock(&tz_lock);
	old = getenv("TZ");
	if (old != NULL)
		saved = strdup(old);
	setenv("TZ", tz, 1);
	tzset();
	for (int isdst = 0; isdst <= 1; isdst++) {
		struct tm tm = {
			.tm_year = c->year - 1900, .tm_mon = c->month - 1, .tm_mday = c->day,
			.tm_hour = c->hour, .tm_min = c->minute, .tm_sec = c->second,
			.tm_isdst = isdst,
		};
		time_t t = mktime(&tm);

		if (t != (time_t)-1 && local_matches(t, c) && (!found || t < best)) {
			best = t;
			found = 1;
		}
	}
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	pthread_mutex_unlock(&tz_lock);
	free(saved);
	if (!found) {
		*why = "that local time does not exist in that time zone (the clocks skip it)";
		return -1;
	}
	*out = (pd_ms)best * 1000;
	return 0;
}

int
timeparse_local(const char *text, const char *tz, pd_ms *out, const char **why)
{
	const char *p = text;
	struct civil c;

	if (text == NULL || *text == '\0') {
		*why = "the time is empty";
		return -1;
	}
	if (parse_civil(&p, " Tt", 1, &c, why) != 0)
		return -1;
	if (*p != '\0') {
		*why = "not a valid time: unexpected text after the time";
		return -1;
	}
	if (tz == NULL || *tz == '\0') {
		*out = civil_to_ms(&c);
		return 0;
	}
	if (!timezone_exists(tz)) {
		*why = "not a time zone known to this system (use an IANA name such as Europe/Berlin)";
		return -1;
	}
	return zone_to_ms(&c, tz, out, why);
}

int
timeparse_unix(const char *text, pd_ms *out, const char **why)
{
	int64_t v = 0;
	size_t n = 0;

	for (; text[n] != '\0'; n++) {
		if (text[n] < '0' || text[n] > '9' || n >= 12) {
			*why = n >= 12 ? "Unix seconds out of range" : "not valid Unix seconds";
			return -1;
		}
		v = v * 10 + (text[n] - '0');
	}
	if (n == 0) {
		*why = "the time is empty";
		return -1;
	}
	*out = v * 1000;
	return 0;
}

/* Whether text ends in Z or a +HH:MM/-HH:MM offset after a time of day. */
static int
has_zone_designator(const char *text)
{
	size_t len = strlen(text);

	if (len > 0 && (text[len - 1] == 'Z' || text[len - 1] == 'z'))
		return 1;
	return len > 16 && (text[len - 6] == '+' || text[len - 6] == '-') && text[len - 3] == ':';
}

int
timeparse_at(const char *text, const char *tz, pd_ms *out, const char **why)
{
	size_t len = text != NULL ? strlen(text) : 0;
	int all_digits = len > 0;

	if (len == 0) {
		*why = "the time is empty";
		return -1;
	}
	if (len > PD_MAX_TIME_TEXT) {
		*why = "the time is too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if (text[i] < '0' || text[i] > '9')
			all_digits = 0;
	if (all_digits || has_zone_designator(text)) {
		if (tz != NULL && *tz != '\0') {
			*why = "tz applies only to a YYYY-MM-DD HH:MM[:SS] time";
			return -1;
		}
		return all_digits ? timeparse_unix(text, out, why) : timeparse_rfc3339(text, out, why);
	}
	/* No zone designator: the local form, in tz or UTC (this includes
	 * "YYYY-MM-DDTHH:MM:SS" without an offset). */
	return timeparse_local(text, tz, out, why);
}

int
timeparse_duration(const char *text, pd_ms *out, const char **why)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = { { 'd', 86400000 }, { 'h', 3600000 }, { 'm', 60000 }, { 's', 1000 } };
	const char *p = text;
	int64_t total = 0;
	size_t next_unit = 0;

	*why = "not a valid duration: use 90, 90s, 15m, 2h, 7d or 1h30m";
	if (text == NULL || *text == '\0')
		return -1;
	while (*p != '\0') {
		int64_t n = 0;
		int nd = 0;

		while (*p >= '0' && *p <= '9') {
			if (++nd > 9)
				return -1;
			n = n * 10 + (*p++ - '0');
		}
		if (nd == 0)
			return -1;
		/* Bare digits are seconds, and only on their own. */
		if (*p == '\0' && p - nd == text) {
			total = n * 1000;
			break;
		}
		while (next_unit < 4 && units[next_unit].unit != *p)
			next_unit++;
		if (next_unit == 4)
			return -1;
		total += n * units[next_unit].ms;
		next_unit++;
		p++;
		if (total > MAX_DURATION_MS)
			break;
	}
	if (total > MAX_DURATION_MS) {
		*why = "the duration is longer than ten years";
		return -1;
	}
	*out = total;
	return 0;
}
