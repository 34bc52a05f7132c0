/*
 * log.c: one line per event on stderr, prefixed with the program name and
 * a level, so journald, syslog and a terminal all read it alike. When
 * stderr is a regular file (--log, or dispatch's 2>>FILE) each line starts
 * with an RFC 3339 UTC time in milliseconds, as nothing else will date it;
 * on a terminal, a pipe or journald's socket it does not, as journald and
 * syslog add their own.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "postdate.h"

static const char *log_program = "postdate";

/* Names the program in every later line. */
void
log_init(const char *program)
{
	log_program = program;
}

/* "2026-11-23T10:00:00.123Z " when stderr is a regular file, else "". It
 * is looked at on every line: http.c points stderr at --log's file after
 * log_init. */
static void
log_timestamp(char *out, size_t size)
{
	struct stat st;
	struct timespec now;
	struct tm tm;
	size_t n;

	out[0] = '\0';
	if (fstat(STDERR_FILENO, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		out[0] = '\0';
	else
		snprintf(out + n, size - n, ".%03ldZ ", now.tv_nsec / 1000000);
}

static void __attribute__((format(printf, 2, 0)))
log_line(const char *level, const char *fmt, va_list ap)
{
	char line[2048], stamp[40];

	/* Formatting into one buffer first keeps concurrent writers' lines whole. */
	vsnprintf(line, sizeof(line), fmt, ap);
	log_timestamp(stamp, sizeof(stamp));
	fprintf(stderr, "%s%s: %s: %s\n", stamp, log_program, level, line);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("info", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warning", fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("error", fmt, ap);
	va_end(ap);
}
