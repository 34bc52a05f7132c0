/*
 * delivery.c: rounds of HTTP attempts over libcurl's multi interface.
 *
 * A job is one claimed message. Its round shuffles the pool and POSTs to
 * each URL in turn until one answers 2xx; then the round's outcome is
 * decided here (delivered, another round later, failed) and the job is
 * handed back for the store to write. The engine never touches the store.
 *
 * After curl's 10-at-a-time example: at most `concurrency` transfers,
 * each job in CURLOPT_PRIVATE, finished transfers drained from
 * curl_multi_info_read. Easy handles are kept and reused, and the multi
 * handle's connection cache keeps connections to targets alive.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "postdate.h"
#include "delivery.h"

struct pd_engine {
	const struct pd_config *cfg;
	const struct pd_signer *signer;
	int verbose;
	CURLM *multi;
	CURL **idle;                 /* easy handles ready for reuse */
	int nidle;
	struct pd_job **inflight;    /* the jobs with a transfer in flight */
	int active;                  /* how many */
	int finishing;               /* rounds end after the current attempt */
	struct pd_job *done, **done_tail;
};

/* ---- jobs ---- */

struct pd_job *
job_new(struct pd_message *m, const struct store_lease *lease)
{
	struct pd_job *job = calloc(1, sizeof(*job));
	char *p;

	if (job == NULL) {
		message_free(m);
		return NULL;
	}
	job->m = *m;
	memset(m, 0, sizeof(*m));        /* the job owns the message now */
	job->lease = *lease;
	job->accepted = -1;
	/* The pool points into the message's own copy of the URLs. */
	for (p = job->m.urls; p != NULL && *p != '\0' && job->npool < PD_MAX_URLS;) {
		char *nl = strchr(p, '\n');

		job->gone[job->npool] = (lease->gone >> job->npool) & 1;
		job->pool[job->npool++] = p;
		if (nl != NULL)
			*nl = '\0';
		p = nl != NULL ? nl + 1 : NULL;
	}
	return job;
}

unsigned
job_gone(const struct pd_job *job)
{
	unsigned gone = 0;

	for (size_t i = 0; i < job->npool; i++)
		gone |= (unsigned)(job->gone[i] != 0) << i;
	return gone;
}

static void
job_clear_answer(struct pd_job *job)
{
	free(job->content_type);
	job->content_type = NULL;
	job->status = 0;
	job->body_len = 0;
	job->body_capped = 0;
}

void
job_free(struct pd_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->nattempts; i++)
		free(job->attempts[i].error);
	job_clear_answer(job);
	free(job->body);
	curl_slist_free_all(job->headers);
	message_free(&job->m);
	free(job);
}

/* ---- the engine ---- */

struct pd_engine *
engine_new(const struct pd_config *cfg, const struct pd_signer *sg, int verbose)
{
	struct pd_engine *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->cfg = cfg;
	e->signer = sg;
	e->verbose = verbose;
	e->done_tail = &e->done;
	e->idle = calloc((size_t)cfg->concurrency, sizeof(*e->idle));
	e->inflight = calloc((size_t)cfg->concurrency, sizeof(*e->inflight));
	e->multi = curl_multi_init();
	if (e->idle == NULL || e->inflight == NULL || e->multi == NULL) {
		engine_free(e);
		return NULL;
	}
	curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->concurrency);
	curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->host_concurrency);
	/* Keep a connection open for every transfer slot. */
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)cfg->concurrency);
	return e;
}

void
engine_free(struct pd_engine *e)
{
	if (e == NULL)
		return;
	for (int i = 0; i < e->nidle; i++)
		curl_easy_cleanup(e->idle[i]);
	free(e->idle);
	free(e->inflight);
	curl_multi_cleanup(e->multi);
	free(e);
}

int
engine_active(const struct pd_engine *e)
{
	return e->active;
}

void
engine_finish_rounds(struct pd_engine *e)
{
	e->finishing = 1;
}

/* Keeps the first PD_MAX_RESPONSE bytes of the answer; past that, ends
 * the transfer (the status is already known), so a target that answers
 * forever cannot hold a slot until the timeout. */
static size_t
on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct pd_job *job = ctx;
	size_t len = size * n, room;

	if (job->body == NULL && (job->body = malloc(PD_MAX_RESPONSE)) == NULL)
		return 0;
	room = PD_MAX_RESPONSE - job->body_len;
	if (len > room) {
		memcpy(job->body + job->body_len, data, room);
		job->body_len += room;
		job->body_capped = 1;
		return 0;
	}
	memcpy(job->body + job->body_len, data, len);
	job->body_len += len;
	return len;
}

/* Opens each socket curl wants, unless the address it is about to
 * connect to is one the target policy forbids: checking the address
 * actually used is what stops DNS names (and rebinding) from reaching
 * loopback or private networks. A refusal fails the connect. */
static curl_socket_t
on_open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *address)
{
	struct pd_job *job = ctx;
	const char *kind = target_address_refused(job->policy, &address->addr);

	(void)purpose;
	if (kind != NULL) {
		char text[INET6_ADDRSTRLEN] = "?";
		const void *raw = address->family == AF_INET6 ?
		    (const void *)&((struct sockaddr_in6 *)&address->addr)->sin6_addr :
		    (const void *)&((struct sockaddr_in *)&address->addr)->sin_addr;

		inet_ntop(address->family, raw, text, sizeof(text));
		snprintf(job->refused, sizeof(job->refused),
		         "refused by the target policy: %s is %s; the URL is dropped from the pool",
		         text, kind);
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* Appends "Name: value" to the job's header list. */
static int
add_header(struct pd_job *job, const char *name, const char *value)
{
	char line[PD_MAX_CONTENT_TYPE + 64];
	struct curl_slist *grown;

	snprintf(line, sizeof(line), "%s: %s", name, value);
	grown = curl_slist_append(job->headers, line);
	if (grown == NULL)
		return -1;
	job->headers = grown;
	return 0;
}

/* Sends the attempt to the round's next URL. -1 when it cannot even start
 * (out of memory); the caller records that and moves on. */
static int
attempt_start(struct pd_engine *e, struct pd_job *job)
{
	const char *url = job->pool[job->order[job->tried]];
	char stamp[24], signature[PD_SIGNATURE_BUF];
	long long now_s = (long long)(time_now() / PD_MS_PER_S);
	CURL *easy;

	job_clear_answer(job);
	job->errbuf[0] = '\0';
	job->refused[0] = '\0';
	job->policy = e->cfg;
	curl_slist_free_all(job->headers);
	job->headers = NULL;
	snprintf(stamp, sizeof(stamp), "%lld", now_s);
	/* webhook-id is the message id on every attempt, so receivers can
	 * drop duplicates; "Expect:" stops curl from waiting for a 100. */
	if (add_header(job, "Content-Type", job->m.content_type) != 0 ||
	    add_header(job, "webhook-id", job->m.id) != 0 ||
	    add_header(job, "webhook-timestamp", stamp) != 0 ||
	    (job->headers = curl_slist_append(job->headers, "Expect:")) == NULL)
		return -1;
	if (e->signer->enabled) {
		if (sign_webhook(e->signer, job->m.id, now_s, job->m.payload, job->m.payload_len,
		                 signature) != 0 ||
		    add_header(job, "webhook-signature", signature) != 0)
			return -1;
	}

	easy = e->nidle > 0 ? e->idle[--e->nidle] : curl_easy_init();
	if (easy == NULL)
		return -1;
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, job->m.payload);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->m.payload_len);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, job->headers);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "postdate/" PD_VERSION);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)job->m.timeout * 1000L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	/* No proxy from the environment: the policy checks what is reached. */
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, job);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, job);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, job->errbuf);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, job);
	if (curl_multi_add_handle(e->multi, easy) != CURLM_OK) {
		e->idle[e->nidle++] = easy;
		return -1;
	}
	job->easy = easy;
	job->slot = e->active;
	e->inflight[e->active++] = job;
	return 0;
}

/* Takes the job's transfer out of the multi handle and keeps its easy
 * handle for the next attempt. */
static void
transfer_end(struct pd_engine *e, struct pd_job *job)
{
	struct pd_job *last = e->inflight[--e->active];

	curl_multi_remove_handle(e->multi, job->easy);
	e->idle[e->nidle++] = job->easy;
	job->easy = NULL;
	last->slot = job->slot;
	e->inflight[job->slot] = last;
}

/* Records an attempt: at (start), url, status (0: no answer), error, ms. */
static void
attempt_record(struct pd_job *job, pd_ms at, const char *url, int status, const char *error,
               int ms)
{
	struct pd_attempt_record *r = &job->attempts[job->nattempts++];

	r->error = error != NULL ? strdup(error) : NULL;
	r->a.at = at;
	r->a.url = url;
	r->a.status = status;
	r->a.error = r->error;
	r->a.ms = ms;
}

/* The index of the next URL this round should try, or -1. */
static int
round_next(struct pd_job *job)
{
	while (job->tried < job->norder && job->gone[job->order[job->tried]])
		job->tried++;
	return job->tried < job->norder ? job->order[job->tried] : -1;
}

/* Hands the job back with its outcome. */
static void
round_end(struct pd_engine *e, struct pd_job *job, enum pd_outcome outcome)
{
	size_t left = 0;
	int rounds;

	job->finished = time_now();
	for (size_t i = 0; i < job->npool; i++)
		left += !job->gone[i];
	rounds = job->m.attempts;    /* counted when claimed, this one included */
	if (outcome == PD_OUTCOME_RETRY && (rounds >= job->m.max_attempts || left == 0))
		outcome = PD_OUTCOME_FAILED;
	if (outcome == PD_OUTCOME_RETRY)
		job->next_attempt = job->finished +
		    retry_delay(e->cfg, rounds, job->retry_after, arc4random());
	job->outcome = outcome;
	job->next = NULL;
	*e->done_tail = job;
	e->done_tail = &job->next;
}

/* Starts attempts until one is in flight or the round is over. */
static void
round_continue(struct pd_engine *e, struct pd_job *job)
{
	while (round_next(job) >= 0) {
		if (e->finishing && job->nattempts > 0) {
			round_end(e, job, PD_OUTCOME_RELEASED);
			return;
		}
		if (attempt_start(e, job) == 0)
			return;
		attempt_record(job, time_now(), job->pool[job->order[job->tried]], 0,
		               "the dispatcher could not start the request (out of memory)", 0);
		job->tried++;
	}
	round_end(e, job, PD_OUTCOME_RETRY);
}

void
engine_start(struct pd_engine *e, struct pd_job *job)
{
	/* Fisher-Yates over the URLs still in the pool. */
	job->norder = 0;
	for (size_t i = 0; i < job->npool; i++)
		if (!job->gone[i])
			job->order[job->norder++] = (unsigned char)i;
	for (size_t i = job->norder; i > 1; i--) {
		size_t j = arc4random_uniform((uint32_t)i);
		unsigned char t = job->order[i - 1];

		job->order[i - 1] = job->order[j];
		job->order[j] = t;
	}
	job->tried = 0;
	job->retry_after = 0;
	/* Every round it had was claimed and never came back (dispatchers
	 * killed while delivering it): it ends here, not in a loop. */
	if (job->m.attempts > job->m.max_attempts) {
		job->m.attempts = job->m.max_attempts;
		round_end(e, job, PD_OUTCOME_FAILED);
		return;
	}
	if (job->norder == 0) {
		round_end(e, job, PD_OUTCOME_FAILED);
		return;
	}
	round_continue(e, job);
}

/* The error text of a finished transfer: curl's detailed message if any. */
static const char *
transfer_error(struct pd_job *job, CURLcode rc)
{
	curl_off_t connected_us = 0;

	/* A transfer queued behind host_concurrency others to the same host
	 * spends its timeout waiting; curl then blames the resolver. */
	curl_easy_getinfo(job->easy, CURLINFO_CONNECT_TIME_T, &connected_us);
	if (rc == CURLE_OPERATION_TIMEDOUT && connected_us == 0 &&
	    curl_easy_getinfo(job->easy, CURLINFO_NAMELOOKUP_TIME_T, &connected_us) == CURLE_OK &&
	    connected_us == 0)
		return "timed out waiting for a free connection to this host (host_concurrency)";
	return job->errbuf[0] != '\0' ? job->errbuf : curl_easy_strerror(rc);
}

/* Reads what a finished transfer got, records the attempt and decides
 * whether the round goes on. */
static void
attempt_finished(struct pd_engine *e, struct pd_job *job, CURLcode rc)
{
	CURL *easy = job->easy;
	int index = job->order[job->tried];
	const char *url = job->pool[index], *error = NULL;
	curl_off_t total_us = 0;
	long status = 0;
	char *type = NULL;
	pd_ms now = time_now();
	int ms;

	curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
	ms = (int)(total_us / 1000);
	/* A capped body ends the transfer with a write error, but the answer
	 * itself came: it counts like any other. */
	if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && job->body_capped)) {
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
		job->status = (int)status;
		job->content_type = type != NULL ? strdup(type) : NULL;
	}
	if (status >= 300 && status < 400)
		error = "redirect not followed";
	else if (status == 410)
		error = "gone: the URL is dropped from the pool";
	else if (status == 0 && job->refused[0] != '\0')
		error = job->refused;
	else if (status == 0)
		error = transfer_error(job, rc);
	if (status == 429 || status == 503) {
		struct curl_header *h = NULL;

		if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK) {
			pd_ms wait = retry_after_parse(h->value, now);

			if (wait > job->retry_after)
				job->retry_after = wait;
		}
	}
	attempt_record(job, now - ms, url, (int)status, error, ms);
	if (e->verbose && status != 0)
		log_info("attempt %s to %s: status %ld, %d ms", job->m.id, URL_SHOWN(url), status, ms);
	else if (e->verbose)
		log_info("attempt %s to %s: %s, %d ms", job->m.id, URL_SHOWN(url), error, ms);

	transfer_end(e, job);
	if (status >= 200 && status < 300) {
		job->accepted = index;
		round_end(e, job, PD_OUTCOME_DELIVERED);
		return;
	}
	/* Dropped for good: 410, and addresses the policy refuses (a name
	 * that resolves there once will likely do so again). */
	if (status == 410 || (status == 0 && job->refused[0] != '\0'))
		job->gone[index] = 1;
	job->tried++;
	round_continue(e, job);
}

/* Takes the list of jobs whose round ended. */
static struct pd_job *
engine_take_done(struct pd_engine *e)
{
	struct pd_job *done = e->done;

	e->done = NULL;
	e->done_tail = &e->done;
	return done;
}

struct pd_job *
engine_run(struct pd_engine *e, int timeout_ms)
{
	CURLMsg *msg;
	int running, left;

	if (e->done == NULL) {
		if (timeout_ms > 0)
			curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
		curl_multi_perform(e->multi, &running);
	}
	while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
		struct pd_job *job = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&job);
		attempt_finished(e, job, msg->data.result);
	}
	return engine_take_done(e);
}

struct pd_job *
engine_abort(struct pd_engine *e)
{
	/* The transfers end unanswered: their rounds are given back, and the
	 * attempts in flight are not recorded, as if never sent. */
	while (e->active > 0) {
		struct pd_job *job = e->inflight[e->active - 1];

		transfer_end(e, job);
		round_end(e, job, PD_OUTCOME_RELEASED);
	}
	return engine_take_done(e);
}
