/*
 * tz.c: IANA time zones read from their TZif files (RFC 8536), without
 * the C library's TZ, tzset, mktime or localtime. Those work on one
 * process-wide zone, and switching it with setenv while request threads
 * and the committer run is undefined behaviour. Here a zone is a value:
 * tz_parse is a pure function of the file's bytes, and a loaded zone is
 * read-only, so any number of threads may use any number of zones.
 *
 * Only the 64-bit (version 2 and later) data is used, and the footer's
 * POSIX TZ string for instants past the last transition; a version 1 file
 * (32-bit data only) is read as it is. Leap-second records are skipped:
 * timezone_exists refuses the "right/" zones that count them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "postdate.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo/"
#define TZ_MAX_FILE (1 << 20)       /* the largest zone file is ~ 4 KiB */
#define TZ_MAX_TRANSITIONS 100000
#define TZ_MAX_OFFSET (26 * 3600)   /* RFC 8536 allows -25:59:59 to +25:59:59 */
#define TZ_HEADER 44
#define SECONDS_PER_DAY 86400
/* Every instant whose local reading is L lies within this of L. */
#define TZ_WINDOW (TZ_MAX_OFFSET + SECONDS_PER_DAY)

/* One of the footer's two transitions each year: a date and a local time. */
struct tz_rule_date {
	char kind;                /* 'J' (1-365, no Feb 29), 'D' (0-365), 'M' */
	int day, week, month;     /* J/D: day; M: month, week 1-5, day 0-6 (Sunday 0) */
	int32_t time;             /* seconds after local midnight, may be < 0 or > 24 h */
};

/* The footer: a standard offset and, when has_dst, the daylight one and
 * the two yearly rules. Offsets are seconds east of UTC. */
struct tz_footer {
	int present;
	int32_t std_off, dst_off;
	int has_dst;
	struct tz_rule_date start, end;
};

struct pd_tz {
	size_t ntrans;
	int64_t *trans;           /* UTC seconds, strictly ascending */
	unsigned char *trans_type;
	size_t ntypes;
	int32_t *type_off;
	struct tz_footer footer;
};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* ---- the footer's POSIX TZ string ---- */

/* Skips a zone abbreviation: three or more letters, or <...> of letters,
 * digits, '+' and '-'. */
static int
posix_name(const char **p)
{
	const char *s = *p;
	size_t n = 0;

	if (*s == '<') {
		for (s++; (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		     (*s >= '0' && *s <= '9') || *s == '+' || *s == '-'; s++)
			n++;
		if (*s != '>' || n < 3)
			return -1;
		*p = s + 1;
		return 0;
	}
	for (; (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'); s++)
		n++;
	if (n < 3)
		return -1;
	*p = s;
	return 0;
}

/* A number of 1 to 3 digits, at most max. */
static int
posix_number(const char **p, int max, int *out)
{
	int v = 0, n = 0;

	for (; **p >= '0' && **p <= '9' && n < 3; (*p)++, n++)
		v = v * 10 + (**p - '0');
	if (n == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* [+-]hh[:mm[:ss]] with hours at most max_hours, as seconds. */
static int
posix_hms(const char **p, int max_hours, int32_t *out)
{
	int sign = 1, h, m = 0, s = 0;

	if (**p == '+' || **p == '-')
		sign = *(*p)++ == '-' ? -1 : 1;
	if (posix_number(p, max_hours, &h) != 0)
		return -1;
	if (**p == ':') {
		(*p)++;
		if (posix_number(p, 59, &m) != 0)
			return -1;
		if (**p == ':') {
			(*p)++;
			if (posix_number(p, 59, &s) != 0)
				return -1;
		}
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return 0;
}

/* ",Jn[/time]", ",n[/time]" or ",Mm.w.d[/time]"; the time defaults to 02:00. */
static int
posix_rule_date(const char **p, struct tz_rule_date *r)
{
	if (*(*p)++ != ',')
		return -1;
	if (**p == 'J') {
		(*p)++;
		r->kind = 'J';
		if (posix_number(p, 365, &r->day) != 0 || r->day < 1)
			return -1;
	} else if (**p == 'M') {
		(*p)++;
		r->kind = 'M';
		if (posix_number(p, 12, &r->month) != 0 || r->month < 1 || *(*p)++ != '.' ||
		    posix_number(p, 5, &r->week) != 0 || r->week < 1 || *(*p)++ != '.' ||
		    posix_number(p, 6, &r->day) != 0)
			return -1;
	} else {
		r->kind = 'D';
		if (posix_number(p, 365, &r->day) != 0)
			return -1;
	}
	r->time = 2 * 3600;
	/* RFC 8536 3.3.1 lets the time run from -167 to 167 hours. */
	if (**p == '/') {
		(*p)++;
		if (posix_hms(p, 167, &r->time) != 0)
			return -1;
	}
	return 0;
}

/*
 * Parses "STDoffset[DST[offset],start[/time],end[/time]]". POSIX offsets
 * count west of UTC ("CET-1" is UTC+1), so their sign is turned. A DST
 * name without rules is refused: POSIX leaves that rule to the
 * implementation, and no zone file relies on it.
 */
static int
posix_tz_parse(const char *s, struct tz_footer *f)
{
	int32_t off;

	memset(f, 0, sizeof(*f));
	if (posix_name(&s) != 0 || posix_hms(&s, 24, &off) != 0)
		return -1;
	f->std_off = -off;
	f->present = 1;
	if (*s == '\0')
		return 0;
	if (posix_name(&s) != 0)
		return -1;
	f->has_dst = 1;
	f->dst_off = f->std_off + 3600;
	if (*s != ',') {
		if (posix_hms(&s, 24, &off) != 0)
			return -1;
		f->dst_off = -off;
	}
	if (posix_rule_date(&s, &f->start) != 0 || posix_rule_date(&s, &f->end) != 0 ||
	    *s != '\0')
		return -1;
	return 0;
}

/* Local midnight (as seconds on a UTC clock) of the day rule r picks in year y. */
static int64_t
rule_day(const struct tz_rule_date *r, int y)
{
	int64_t jan1 = days_from_civil(y, 1, 1), first;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	int dow, mday, mdays;

	switch (r->kind) {
	case 'J':
		/* Julian days never count February 29. */
		return (jan1 + r->day - 1 + (leap && r->day >= 60)) * SECONDS_PER_DAY;
	case 'D':
		return (jan1 + r->day) * SECONDS_PER_DAY;
	default:
		first = days_from_civil(y, r->month, 1);
		/* 1970-01-01 was a Thursday (4). */
		dow = (int)(((first + 4) % 7 + 7) % 7);
		mday = 1 + (r->day - dow + 7) % 7 + (r->week - 1) * 7;
		mdays = (int)(days_from_civil(r->month == 12 ? y + 1 : y, r->month == 12 ? 1 : r->month + 1,
		    1) - first);
		/* Week 5 means the last such day of the month. */
		while (mday > mdays)
			mday -= 7;
		return (first + mday - 1) * SECONDS_PER_DAY;
	}
}

/*
 * The footer's transitions of years y-2 to y+1, in order: UTC instants and
 * whether daylight time begins at each. Returns how many (0 without DST).
 * A rule's time may run up to 167 hours past its day, so a transition of
 * one year can fall early in the next: y-2 is there so that every instant
 * of year y-1 on comes after some transition in the list.
 */
#define FOOTER_TRANSITIONS 8
static size_t
footer_transitions(const struct tz_footer *f, int y, int64_t at[FOOTER_TRANSITIONS],
                   int to_dst[FOOTER_TRANSITIONS])
{
	size_t n = 0;

	if (!f->has_dst)
		return 0;
	for (int year = y - 2; year <= y + 1; year++) {
		/* The start time is read on standard time, the end on daylight time. */
		at[n] = rule_day(&f->start, year) + f->start.time - f->std_off;
		to_dst[n++] = 1;
		at[n] = rule_day(&f->end, year) + f->end.time - f->dst_off;
		to_dst[n++] = 0;
	}
	/* Insertion sort of eight: southern zones end daylight time before they start it. */
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0 && at[j - 1] > at[j]; j--) {
			int64_t t = at[j];
			int d = to_dst[j];

			at[j] = at[j - 1];
			to_dst[j] = to_dst[j - 1];
			at[j - 1] = t;
			to_dst[j - 1] = d;
		}
	}
	return n;
}

/* The UTC year of instant t. */
static int
utc_year(int64_t t)
{
	int y, m, d;
	int64_t days = t / SECONDS_PER_DAY;

	if (t % SECONDS_PER_DAY < 0)
		days--;
	civil_from_days(days, &y, &m, &d);
	return y;
}

/* The offset the footer gives at instant t: the state the last of its
 * transitions at or before t set (year y-2's come before any t of year y). */
static int32_t
footer_offset_at(const struct tz_footer *f, int64_t t)
{
	int64_t at[FOOTER_TRANSITIONS];
	int to_dst[FOOTER_TRANSITIONS], dst = 0;
	size_t n = footer_transitions(f, utc_year(t), at, to_dst);

	for (size_t i = 0; i < n && at[i] <= t; i++)
		dst = to_dst[i];
	return dst ? f->dst_off : f->std_off;
}

/* ---- loading ---- */

/*
 * Reads one header and data block of a TZif file at p (end bounds it),
 * with times of tsize bytes, into z; when z is NULL only measures it.
 * Returns the bytes it takes, or 0 if malformed.
 */
static size_t
tzif_block(const unsigned char *p, const unsigned char *end, size_t tsize, struct pd_tz *z)
{
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
	const unsigned char *d;
	size_t need;

	if (end - p < TZ_HEADER || memcmp(p, "TZif", 4) != 0)
		return 0;
	isutcnt = be32(p + 20);
	isstdcnt = be32(p + 24);
	leapcnt = be32(p + 28);
	timecnt = be32(p + 32);
	typecnt = be32(p + 36);
	charcnt = be32(p + 40);
	if (timecnt > TZ_MAX_TRANSITIONS || typecnt == 0 || typecnt > 256 || charcnt > 65536 ||
	    leapcnt > 65536 || (isutcnt != 0 && isutcnt != typecnt) ||
	    (isstdcnt != 0 && isstdcnt != typecnt))
		return 0;
	need = TZ_HEADER + timecnt * (tsize + 1) + typecnt * 6 + charcnt +
	    leapcnt * (tsize + 4) + isstdcnt + isutcnt;
	if ((size_t)(end - p) < need)
		return 0;
	if (z == NULL)
		return need;
	z->trans = malloc((timecnt > 0 ? timecnt : 1) * sizeof(*z->trans));
	z->trans_type = malloc(timecnt > 0 ? timecnt : 1);
	z->type_off = malloc(typecnt * sizeof(*z->type_off));
	if (z->trans == NULL || z->trans_type == NULL || z->type_off == NULL)
		return 0;
	d = p + TZ_HEADER;
	for (uint32_t i = 0; i < timecnt; i++, d += tsize) {
		z->trans[i] = tsize == 8 ? be64(d) : (int64_t)(int32_t)be32(d);
		if (i > 0 && z->trans[i] <= z->trans[i - 1])
			return 0;
	}
	for (uint32_t i = 0; i < timecnt; i++, d++) {
		if (*d >= typecnt)
			return 0;
		z->trans_type[i] = *d;
	}
	for (uint32_t i = 0; i < typecnt; i++, d += 6) {
		int32_t off = (int32_t)be32(d);

		if (off < -TZ_MAX_OFFSET || off > TZ_MAX_OFFSET || d[4] > 1 || d[5] >= charcnt)
			return 0;
		z->type_off[i] = off;
	}
	z->ntrans = timecnt;
	z->ntypes = typecnt;
	return need;
}

void
tz_free(struct pd_tz *z)
{
	if (z == NULL)
		return;
	free(z->trans);
	free(z->trans_type);
	free(z->type_off);
	free(z);
}

int
tz_parse(const unsigned char *data, size_t len, struct pd_tz **out)
{
	const unsigned char *end = data + len, *p = data, *nl;
	struct pd_tz *z = calloc(1, sizeof(*z));
	char footer[128];
	size_t used;

	*out = NULL;
	if (z == NULL)
		return -1;
	if (len < TZ_HEADER || memcmp(data, "TZif", 4) != 0)
		goto bad;
	if (data[4] == '\0') {
		/* Version 1: 32-bit times and no footer. */
		if (tzif_block(p, end, 4, z) == 0)
			goto bad;
		*out = z;
		return 0;
	}
	/* Version 2 and later repeat the data with 64-bit times after the
	 * 32-bit block, whose size the first header gives. */
	if ((used = tzif_block(p, end, 4, NULL)) == 0)
		goto bad;
	p += used;
	if ((used = tzif_block(p, end, 8, z)) == 0)
		goto bad;
	p += used;
	/* The footer: "\n" TZ string "\n"; an empty string means none. */
	if (p >= end || *p != '\n' || (nl = memchr(p + 1, '\n', (size_t)(end - p - 1))) == NULL ||
	    (size_t)(nl - p - 1) >= sizeof(footer))
		goto bad;
	memcpy(footer, p + 1, (size_t)(nl - p - 1));
	footer[nl - p - 1] = '\0';
	if (footer[0] != '\0' && posix_tz_parse(footer, &z->footer) != 0)
		goto bad;
	*out = z;
	return 0;
bad:
	tz_free(z);
	return -1;
}

int
tz_load(const char *name, struct pd_tz **out)
{
	char path[sizeof(ZONEINFO_DIR) + PD_MAX_TIME_TEXT];
	unsigned char *data = NULL;
	struct stat st;
	size_t got = 0;
	int fd, rc = -1;

	*out = NULL;
	if (!timezone_exists(name))
		return -1;
	snprintf(path, sizeof(path), ZONEINFO_DIR "%s", name);
	/* O_NONBLOCK so that a FIFO, were one there, cannot hang the open. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_MAX_FILE ||
	    (data = malloc((size_t)st.st_size + 1)) == NULL)
		goto out;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	rc = tz_parse(data, got, out);
out:
	free(data);
	close(fd);
	return rc;
}

/* ---- conversions ---- */

int32_t
tz_offset_at(const struct pd_tz *z, int64_t utc)
{
	size_t lo = 0, hi = z->ntrans;

	/* Before the first transition the first type holds (RFC 8536 3.2). */
	if (z->ntrans == 0 || utc < z->trans[0])
		return z->ntrans == 0 && z->footer.present ? footer_offset_at(&z->footer, utc) :
		    z->type_off[0];
	if (utc >= z->trans[z->ntrans - 1] && z->footer.present)
		return footer_offset_at(&z->footer, utc);
	/* The last transition at or before utc. */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->trans[mid] <= utc)
			lo = mid;
		else
			hi = mid;
	}
	return z->type_off[z->trans_type[lo]];
}

/* Adds to at[] the transitions of z within [from, to], at most cap in all. */
static size_t
transitions_between(const struct pd_tz *z, int64_t from, int64_t to, int64_t *at, size_t cap)
{
	size_t n = 0, lo = 0, hi = z->ntrans;
	int64_t fat[FOOTER_TRANSITIONS];
	int to_dst[FOOTER_TRANSITIONS];
	size_t nf;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->trans[mid] < from)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < z->ntrans && z->trans[lo] <= to && n < cap; lo++)
		at[n++] = z->trans[lo];
	if (z->footer.present) {
		for (int y = utc_year(from); y <= utc_year(to); y++) {
			nf = footer_transitions(&z->footer, y, fat, to_dst);
			for (size_t i = 0; i < nf && n < cap; i++)
				if (fat[i] >= from && fat[i] <= to)
					at[n++] = fat[i];
		}
	}
	return n;
}

/*
 * The instants whose local reading in z is local (seconds on a UTC clock
 * that shows local time): each offset in force somewhere near it gives a
 * candidate, kept when it reads back as local. With none, local lies in a
 * gap, and the transition that jumps over it is the first instant after.
 */
enum tz_local
tz_local_to_utc(const struct pd_tz *z, int64_t local, int64_t *utc)
{
	int64_t at[64], best = 0, latest = 0;
	size_t n = transitions_between(z, local - TZ_WINDOW, local + TZ_WINDOW, at, 63);
	int found = 0;

	at[n++] = local - TZ_WINDOW;
	for (size_t i = 0; i < n; i++) {
		int32_t off = tz_offset_at(z, at[i]);
		int64_t cand = local - off;

		if (tz_offset_at(z, cand) != off)
			continue;
		if (!found || cand < best)
			best = cand;
		if (!found || cand > latest)
			latest = cand;
		found = 1;
	}
	if (found) {
		*utc = best;
		return latest != best ? TZ_LOCAL_REPEATED : TZ_LOCAL_UNIQUE;
	}
	/* The gap's end: the transition whose readings before and after
	 * straddle local. */
	for (size_t i = 0; i + 1 < n; i++) {
		int64_t t = at[i];

		if (t + tz_offset_at(z, t - 1) <= local && t + tz_offset_at(z, t) > local &&
		    (found == 0 || t < best)) {
			best = t;
			found = 1;
		}
	}
	*utc = best;
	return TZ_LOCAL_SKIPPED;
}
