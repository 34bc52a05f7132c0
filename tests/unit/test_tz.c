/*
 * test_tz.c: zones read from TZif files (tz.c). The expected offsets and
 * conversions in tz_cases.h were computed independently with Python's
 * zoneinfo (tests/unit/tz_cases.py), around both yearly transitions of a
 * northern and a southern zone, in years the transition table covers and
 * in years only the footer's TZ string does.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "postdate.h"
#include "unit.h"

struct offset_case {
	const char *zone;
	int64_t utc;
	int32_t offset;
};

struct local_case {
	const char *zone;
	int64_t local;
	int64_t utc;
	enum tz_local kind;
};

#include "tz_cases.h"

#define NOFFSET (sizeof(offset_cases) / sizeof(offset_cases[0]))
#define NLOCAL (sizeof(local_cases) / sizeof(local_cases[0]))

/* Checks every case once; returns how many disagreed. */
static int
run_all_cases(int report)
{
	int wrong = 0;

	for (size_t i = 0; i < NOFFSET; i++) {
		const struct offset_case *c = &offset_cases[i];
		struct pd_tz *z;

		if (tz_load(c->zone, &z) != 0) {
			wrong++;
			continue;
		}
		if (tz_offset_at(z, c->utc) != c->offset) {
			if (report)
				fprintf(stderr, "  %s at %lld: offset %d, want %d\n", c->zone,
				        (long long)c->utc, (int)tz_offset_at(z, c->utc), (int)c->offset);
			wrong++;
		}
		tz_free(z);
	}
	for (size_t i = 0; i < NLOCAL; i++) {
		const struct local_case *c = &local_cases[i];
		struct pd_tz *z;
		int64_t utc = -1;
		enum tz_local kind;

		if (tz_load(c->zone, &z) != 0) {
			wrong++;
			continue;
		}
		kind = tz_local_to_utc(z, c->local, &utc);
		if (kind != c->kind || utc != c->utc) {
			if (report)
				fprintf(stderr, "  %s local %lld: %lld kind %d, want %lld kind %d\n",
				        c->zone, (long long)c->local, (long long)utc, (int)kind,
				        (long long)c->utc, (int)c->kind);
			wrong++;
		}
		tz_free(z);
	}
	return wrong;
}

static void
test_offsets_and_conversions_match_python_zoneinfo(void)
{
	CHECK_INT(run_all_cases(1), 0);
}

static void
test_both_berlin_transitions_are_a_gap_and_an_overlap(void)
{
	struct pd_tz *z;
	int64_t utc;

	CHECK_INT(tz_load("Europe/Berlin", &z), 0);
	/* 2026-03-29 02:30 is skipped: the gap ends at 01:00Z (03:00 CEST). */
	CHECK_INT(tz_local_to_utc(z, 1774751400LL, &utc), TZ_LOCAL_SKIPPED);
	CHECK_INT(utc, 1774746000LL);
	/* 2026-10-25 02:30 happens twice: first at 00:30Z (CEST). */
	CHECK_INT(tz_local_to_utc(z, 1792895400LL, &utc), TZ_LOCAL_REPEATED);
	CHECK_INT(utc, 1792888200LL);
	tz_free(z);
}

struct thread_result {
	int wrong;
};

static void *
convert_in_thread(void *arg)
{
	struct thread_result *r = arg;

	for (int round = 0; round < 20; round++)
		r->wrong += run_all_cases(0);
	return NULL;
}

/* Regression: conversion switched the process-wide TZ with setenv, which
 * is undefined behaviour while other threads read the environment. Now
 * each thread converts from its own loaded zone, and all must agree. */
static void
test_conversions_from_several_threads_agree(void)
{
	pthread_t threads[8];
	struct thread_result results[8] = { { 0 } };

	for (int i = 0; i < 8; i++)
		CHECK_INT(pthread_create(&threads[i], NULL, convert_in_thread, &results[i]), 0);
	for (int i = 0; i < 8; i++) {
		pthread_join(threads[i], NULL);
		CHECK_INT(results[i].wrong, 0);
	}
}

/* Regression: timeparse_local must not touch TZ at all. */
static void
test_local_conversion_leaves_tz_alone(void)
{
	const char *why = NULL;
	pd_ms t;

	setenv("TZ", "Asia/Tokyo", 1);
	CHECK_INT(timeparse_local("2026-07-01 12:00", "Europe/Berlin", &t, &why), 0);
	CHECK_STR(getenv("TZ"), "Asia/Tokyo");
	unsetenv("TZ");
	CHECK_INT(timeparse_local("2026-07-01 12:00", "Europe/Berlin", &t, &why), 0);
	CHECK(getenv("TZ") == NULL);
}

static void
test_malformed_tzif_is_refused(void)
{
	static const unsigned char v1_utc[] = {
		'T', 'Z', 'i', 'f', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4,
		0, 0, 0, 0, 0, 0, 'U', 'T', 'C', 0,
	};
	unsigned char buf[sizeof(v1_utc)];
	struct pd_tz *z = NULL;

	/* A minimal version 1 file: one type, UTC. */
	CHECK_INT(tz_parse(v1_utc, sizeof(v1_utc), &z), 0);
	if (z != NULL)
		CHECK_INT(tz_offset_at(z, 1782864000LL), 0);
	tz_free(z);
	/* Cut short, a wrong magic, no types. */
	CHECK_INT(tz_parse(v1_utc, sizeof(v1_utc) - 1, &z), -1);
	CHECK(z == NULL);
	memcpy(buf, v1_utc, sizeof(buf));
	buf[0] = 'X';
	CHECK_INT(tz_parse(buf, sizeof(buf), &z), -1);
	memcpy(buf, v1_utc, sizeof(buf));
	buf[39] = 0;
	CHECK_INT(tz_parse(buf, sizeof(buf), &z), -1);
	CHECK_INT(tz_parse(v1_utc, 10, &z), -1);
	CHECK_INT(tz_load("Mars/Base", &z), -1);
	CHECK_INT(tz_load("../etc/passwd", &z), -1);
}

static const struct unit_test tests[] = {
	UNIT(test_offsets_and_conversions_match_python_zoneinfo),
	UNIT(test_both_berlin_transitions_are_a_gap_and_an_overlap),
	UNIT(test_conversions_from_several_threads_agree),
	UNIT(test_local_conversion_leaves_tz_alone),
	UNIT(test_malformed_tzif_is_refused),
};

int
main(void)
{
	return unit_run("tz", tests, UNIT_COUNT(tests));
}
