/* unit.c: runs the tests of one unit-test program (see unit.h). */
#include <stdlib.h>

#include "unit.h"

int unit_failed_checks;

int
unit_run(const char *suite, const struct unit_test *tests, size_t n)
{
	size_t passed = 0, failed = 0;
	/* UNIT_ONLY=word runs only the tests whose names contain it. */
	const char *only = getenv("UNIT_ONLY");

	for (size_t i = 0; i < n; i++) {
		int before = unit_failed_checks;

		if (only != NULL && strstr(tests[i].name, only) == NULL)
			continue;

		tests[i].fn();
		if (unit_failed_checks == before) {
			passed++;
			printf("ok   %s %s\n", suite, tests[i].name);
		} else {
			failed++;
			printf("FAIL %s %s\n", suite, tests[i].name);
		}
	}
	printf("%s: %zu passed, %zu failed\n", suite, passed, failed);
	return failed ? 1 : 0;
}
