/*
 * baseline_multi: the dispatch benchmark's baseline. A bare libcurl multi
 * loop that POSTs the same small body COUNT times to one URL with at most
 * CONCURRENCY requests in flight, reusing handles and connections. No
 * database, no headers beyond Content-Type, no bookkeeping: the ceiling any
 * real dispatcher is measured against.
 *
 * usage: baseline_multi URL COUNT CONCURRENCY
 * Prints one line: "baseline_multi: N posts in S s: R/s, F failed".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static const char body[] = "{\"bench\":true}";

static size_t
discard(char *data, size_t size, size_t n, void *user)
{
	(void)data;
	(void)user;
	return size * n;
}

static CURL *
new_handle(const char *url, struct curl_slist *headers)
{
	CURL *easy = curl_easy_init();

	if (easy == NULL)
		return NULL;
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)(sizeof(body) - 1));
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	return easy;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct curl_slist *headers = NULL;
	CURLM *multi;
	long count, concurrency, started = 0, done = 0, failed = 0;
	double t0, took;

	if (argc != 4 || (count = atol(argv[2])) < 1 || (concurrency = atol(argv[3])) < 1) {
		fprintf(stderr, "usage: baseline_multi URL COUNT CONCURRENCY\n");
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	headers = curl_slist_append(headers, "Content-Type: application/json");
	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, concurrency);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, concurrency);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, concurrency);

	t0 = now_s();
	for (; started < concurrency && started < count; started++) {
		CURL *easy = new_handle(argv[1], headers);

		if (easy == NULL || curl_multi_add_handle(multi, easy) != CURLM_OK) {
			fprintf(stderr, "baseline_multi: out of memory\n");
			return 1;
		}
	}
	while (done < count) {
		CURLMsg *msg;
		int running, left;

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			long code = 0;
			CURL *easy = msg->easy_handle;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
			if (msg->data.result != CURLE_OK || code < 200 || code > 299)
				failed++;
			done++;
			curl_multi_remove_handle(multi, easy);
			if (started < count) {
				/* The same handle again: its connection stays warm. */
				curl_multi_add_handle(multi, easy);
				started++;
			} else {
				curl_easy_cleanup(easy);
			}
		}
		if (done < count)
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	took = now_s() - t0;
	printf("baseline_multi: %ld posts in %.3f s: %.0f/s, %ld failed\n", count, took,
	       count / took, failed);
	curl_multi_cleanup(multi);
	curl_slist_free_all(headers);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
