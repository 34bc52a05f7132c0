/*
 * retry.c: when a failed round is tried again. Round n waits about
 * retry_base * 2^(n-1) seconds, give or take a fifth (so that messages
 * that failed together do not return together), never more than
 * retry_max; a target's Retry-After can only push that later.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "postdate.h"
#include "delivery.h"

pd_ms
retry_delay(const struct pd_config *cfg, int rounds_failed, pd_ms retry_after, uint32_t random)
{
	pd_ms cap = (pd_ms)cfg->retry_max * PD_MS_PER_S;
	pd_ms wait = (pd_ms)cfg->retry_base * PD_MS_PER_S;

	for (int i = 1; i < rounds_failed && wait < cap; i++)
		wait *= 2;
	/* Jitter: a factor from 0.8 to 1.2. */
	wait = wait * (800 + (pd_ms)(random % 401)) / 1000;
	if (retry_after > wait)
		wait = retry_after;
	return wait < cap ? wait : cap;
}

pd_ms
retry_after_parse(const char *value, pd_ms now)
{
	const char *rest;
	long long secs = 0;
	time_t when;
	size_t n = 0;

	if (value == NULL)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	/* delay-seconds: digits only, saturating (the caller caps the wait). */
	for (; value[n] >= '0' && value[n] <= '9'; n++)
		if (secs < 1000000000)
			secs = secs * 10 + (value[n] - '0');
	if (n > 0) {
		for (rest = value + n; *rest == ' ' || *rest == '\t'; rest++)
			continue;
		return *rest == '\0' ? secs * PD_MS_PER_S : 0;
	}
	/* Or an HTTP date. */
	when = curl_getdate(value, NULL);
	if (when == -1 || (pd_ms)when * PD_MS_PER_S <= now)
		return 0;
	return (pd_ms)when * PD_MS_PER_S - now;
}
