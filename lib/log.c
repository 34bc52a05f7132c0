/*
 * log.c: one line per event on stderr, prefixed with the program name and
 * a level, so journald, syslog and a terminal all read it alike.
 */
#include <stdio.h>

#include "postdate.h"

static const char *log_program = "postdate";

/* Names the program in every later line. */
void
log_init(const char *program)
{
	log_program = program;
}

static void __attribute__((format(printf, 2, 0)))
log_line(const char *level, const char *fmt, va_list ap)
{
	char line[2048];

	/* Formatting into one buffer first keeps concurrent writers' lines whole. */
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s: %s: %s\n", log_program, level, line);
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
