/*
 * clock.c: the clock for local deadlines and waits. Wall-clock time
 * (time_now) is for what is stored or sent; it can step back or forward
 * (NTP, an administrator), and a deadline on it would then come hours
 * late or at once. CLOCK_MONOTONIC only moves forward.
 */
#include <time.h>

#include "postdate.h"

pd_ms
clock_monotonic(void)
{
	struct timespec ts = { 0, 0 };

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (pd_ms)ts.tv_sec * PD_MS_PER_S + ts.tv_nsec / 1000000;
}
