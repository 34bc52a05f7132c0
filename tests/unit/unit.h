/*
 * unit.h: a minimal unit-test harness. Each test is a function; CHECK
 * records a failure with its location and the test carries on.
 *
 *	static void test_leap_day(void) { CHECK(...); CHECK_INT(a, b); }
 *	static const struct unit_test tests[] = { UNIT(test_leap_day), ... };
 *	int main(void) { return unit_run("timeparse", tests, UNIT_COUNT(tests)); }
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>

struct unit_test {
	const char *name;
	void (*fn)(void);
};

#define UNIT(fn) { #fn, fn }
#define UNIT_COUNT(a) (sizeof(a) / sizeof((a)[0]))

extern int unit_failed_checks;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
		unit_failed_checks++; \
	} \
} while (0)

#define CHECK_INT(got, want) do { \
	long long got_ = (long long)(got), want_ = (long long)(want); \
	if (got_ != want_) { \
		fprintf(stderr, "  %s:%d: %s is %lld, want %lld\n", __FILE__, __LINE__, #got, got_, want_); \
		unit_failed_checks++; \
	} \
} while (0)

#define CHECK_STR(got, want) do { \
	const char *got_ = (got), *want_ = (want); \
	if (got_ == NULL || want_ == NULL ? got_ != want_ : strcmp(got_, want_) != 0) { \
		fprintf(stderr, "  %s:%d: %s is \"%s\", want \"%s\"\n", __FILE__, __LINE__, #got, \
		        got_ ? got_ : "(null)", want_ ? want_ : "(null)"); \
		unit_failed_checks++; \
	} \
} while (0)

/* Runs every test, prints one line per test and "SUITE: N passed, N
 * failed"; returns 0 when all passed, 1 otherwise. */
int unit_run(const char *suite, const struct unit_test *tests, size_t n);

#endif
