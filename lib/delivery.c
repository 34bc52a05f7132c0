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
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <curl/curl.h>

#include "postdate.h"
#include "delivery.h"

/* A host:port's share of the transfer slots (see delivery.h). Kept while
 * a transfer holds one of its slots or a job waits for one, and for a
 * while after: the table keeps up to HOST_TABLE entries. */
#define HOST_TABLE 1024

struct pd_host {
	char key[PD_HOST_KEY_MAX];   /* "scheme://host:port", lower case */
	int inflight;                /* transfers holding its slots */
	int waiting;                 /* jobs parked for one */
	int share;                   /* how many slots it may hold now */
	int answered;                /* its last attempt got an HTTP answer */
};

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
	struct pd_job *waiting, **waiting_tail;  /* parked for a host slot, oldest first */
	int nwaiting;
	struct pd_host *hosts[HOST_TABLE];       /* open addressing on the key */
	int nhosts;
	int reserve;                 /* slots kept for hosts that answer */
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

void
job_free(struct pd_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->nattempts; i++)
		free(job->attempts[i].error);
	free(job->content_type);
	free(job->body);
	free(job->rx);
	curl_slist_free_all(job->headers);
	message_free(&job->m);
	free(job);
}

/* ---- hosts ---- */

/* The URL passed target_url_valid at schedule time; anything odd just
 * makes a key of its own. */
void
delivery_host_key(const char *url, char key[PD_HOST_KEY_MAX])
{
	const char *p = strstr(url, "://"), *authority, *end, *at;
	size_t n = 0, hostlen;
	int https = strncasecmp(url, "https:", 6) == 0;

	authority = p != NULL ? p + 3 : url;
	end = authority + strcspn(authority, "/?#");
	/* Userinfo is not part of the host. */
	for (at = authority; at < end; at++)
		if (*at == '@')
			authority = at + 1;
	n = (size_t)snprintf(key, PD_HOST_KEY_MAX, "%s://", https ? "https" : "http");
	hostlen = (size_t)(end - authority);
	for (size_t i = 0; i < hostlen && n + 1 < PD_HOST_KEY_MAX; i++)
		key[n++] = (char)tolower((unsigned char)authority[i]);
	key[n] = '\0';
	/* A port given, unless the host is a bare IPv6 literal "[...]". */
	if (memchr(authority, ':', hostlen) == NULL ||
	    (hostlen > 0 && authority[hostlen - 1] == ']'))
		snprintf(key + n, PD_HOST_KEY_MAX - n, ":%s", https ? "443" : "80");
}

static size_t
host_hash(const char *key)
{
	uint32_t h = 2166136261u;  /* FNV-1a */

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h % HOST_TABLE;
}

/* Forgets the hosts that hold no slot and have no job waiting, when the
 * table is three quarters full: they start afresh if they come back. */
static void
hosts_prune(struct pd_engine *e)
{
	struct pd_host *keep[HOST_TABLE];
	int n = 0;

	for (int i = 0; i < HOST_TABLE; i++) {
		struct pd_host *h = e->hosts[i];

		e->hosts[i] = NULL;
		if (h == NULL)
			continue;
		if (h->inflight > 0 || h->waiting > 0)
			keep[n++] = h;
		else
			free(h);
	}
	e->nhosts = 0;
	for (int i = 0; i < n; i++) {
		size_t j = host_hash(keep[i]->key);

		while (e->hosts[j] != NULL)
			j = (j + 1) % HOST_TABLE;
		e->hosts[j] = keep[i];
		e->nhosts++;
	}
}

/* The host of url, made when new; NULL when out of memory or when every
 * entry is busy (the caller then goes without a share). */
static struct pd_host *
host_of(struct pd_engine *e, const char *url)
{
	char key[PD_HOST_KEY_MAX];
	size_t i;

	delivery_host_key(url, key);
	for (i = host_hash(key); e->hosts[i] != NULL; i = (i + 1) % HOST_TABLE)
		if (strcmp(e->hosts[i]->key, key) == 0)
			return e->hosts[i];
	if (e->nhosts >= HOST_TABLE * 3 / 4) {
		hosts_prune(e);
		if (e->nhosts >= HOST_TABLE * 3 / 4)
			return NULL;
		for (i = host_hash(key); e->hosts[i] != NULL; i = (i + 1) % HOST_TABLE)
			continue;
	}
	if ((e->hosts[i] = calloc(1, sizeof(**e->hosts))) == NULL)
		return NULL;
	memcpy(e->hosts[i]->key, key, sizeof(key));
	/* Unproven until it answers: no reserved slot for it yet. */
	e->hosts[i]->share = e->cfg->host_concurrency;
	e->hosts[i]->answered = 0;
	e->nhosts++;
	return e->hosts[i];
}

/* Whether a transfer to host may start now (see delivery.h). */
static int
host_may_start(const struct pd_engine *e, const struct pd_host *h)
{
	if (e->active >= e->cfg->concurrency)
		return 0;
	if (h == NULL)
		return 1;
	if (h->inflight >= h->share)
		return 0;
	return e->active < e->cfg->concurrency - e->reserve || h->answered || h->inflight == 0;
}

/* What an attempt's end teaches about its host: an answer earns it a
 * slot more, a time-out halves its share. */
static void
host_learn(const struct pd_engine *e, struct pd_host *h, int answered, int timed_out)
{
	if (h == NULL)
		return;
	h->answered = answered;
	if (answered && h->share < e->cfg->host_concurrency)
		h->share++;
	else if (timed_out && h->share > 1)
		h->share /= 2;
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
	e->waiting_tail = &e->waiting;
	e->reserve = cfg->concurrency / 4;
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
	for (int i = 0; i < HOST_TABLE; i++)
		free(e->hosts[i]);
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
engine_wakeup(struct pd_engine *e)
{
	curl_multi_wakeup(e->multi);
}

int
engine_jobs(const struct pd_engine *e)
{
	return e->active + e->nwaiting;
}

int
engine_room(const struct pd_engine *e)
{
	int free_slots = e->cfg->concurrency - e->active;
	int park_room = e->cfg->concurrency - e->nwaiting;

	return free_slots < park_room ? free_slots : park_room;
}

pd_ms
engine_next_deadline(const struct pd_engine *e)
{
	return e->waiting != NULL ? e->waiting->waiting_since + PD_HOST_WAIT_MS : 0;
}

void
engine_finish_rounds(struct pd_engine *e)
{
	e->finishing = 1;
}

/* Keeps the first report_body_max bytes of the answer (what a callback
 * report relays); past that, ends the transfer (the status is already
 * known), so a target that answers forever cannot hold a slot until the
 * timeout. */
static size_t
on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct pd_job *job = ctx;
	size_t len = size * n, room, keep = job->policy->report_body_max;

	/* Room for the largest answer kept, whatever report_body_max is, so
	 * the buffer can be reused from job to job. */
	if (job->rx == NULL && (job->rx = malloc(PD_MAX_RESPONSE)) == NULL)
		return 0;
	room = keep - job->rx_len;
	if (len > room) {
		memcpy(job->rx + job->rx_len, data, room);
		job->rx_len += room;
		job->rx_capped = 1;
		return 0;
	}
	memcpy(job->rx + job->rx_len, data, len);
	job->rx_len += len;
	return len;
}

/* Called by curl when the connection is there and the request is about
 * to go out: the moment the webhook-timestamp (and the signature over it)
 * must say, however long the transfer waited for a connection. */
static int
on_request_start(void *ctx, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	struct pd_job *job = ctx;

	(void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
	if (sign_stamp_lines(job->signer, job->m.id, (long long)(time_now() / PD_MS_PER_S),
	                     job->m.payload, job->m.payload_len, job->stamp_line->data,
	                     PD_STAMP_LINE,
	                     job->signature_line != NULL ? job->signature_line->data : NULL) != 0)
		return CURL_PREREQFUNC_ABORT;
	return CURL_PREREQFUNC_OK;
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
	unsigned port;

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
	port = ntohs(address->family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&address->addr)->sin6_port :
	    ((struct sockaddr_in *)&address->addr)->sin_port);
	if (target_port_refused(job->policy, port) != NULL) {
		snprintf(job->refused, sizeof(job->refused),
		         "refused by the target policy: port %u is not in allow_ports; "
		         "the URL is dropped from the pool", port);
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* Closes a connection curl is done with. One that still holds request
 * bytes unsent or unacknowledged (a transfer that timed out with its
 * target unreachable) is reset instead, dropping them: on a plain close
 * the kernel goes on sending them, and a target reachable again later
 * would get a request postdate had given up on and retried, a duplicate.
 * The connection may outlive the transfer that opened it: no context. */
static int
on_close_socket(void *unused, curl_socket_t fd)
{
	int unsent = 0;

	(void)unused;
	if (ioctl(fd, SIOCOUTQ, &unsent) == 0 && unsent > 0) {
		struct linger reset = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	}
	return close(fd);
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

/* Appends one of the message's own headers, as stored ("Name: value").
 * curl drops a header written "Name:" with nothing after it, and sends
 * "Name;" as that header with an empty value. */
static int
add_own_header(void *ctx, const char *name, size_t namelen, const char *value, size_t valuelen)
{
	struct pd_job *job = ctx;
	char line[PD_MAX_HEADER_BYTES + 1];
	struct curl_slist *grown;

	if (namelen + 2 + valuelen >= sizeof(line))
		return -1;
	memcpy(line, name, namelen);
	if (valuelen == 0) {
		line[namelen] = ';';
		line[namelen + 1] = '\0';
	} else {
		memcpy(line + namelen, ": ", 2);
		memcpy(line + namelen + 2, value, valuelen);
		line[namelen + 2 + valuelen] = '\0';
	}
	if ((grown = curl_slist_append(job->headers, line)) == NULL)
		return -1;
	job->headers = grown;
	return 0;
}

/* Appends a header line of exactly len - 1 placeholder characters after
 * "Name: ", to be written in place when the request goes out; returns its
 * node in the job's header list, or NULL. */
static struct curl_slist *
add_placeholder(struct pd_job *job, const char *name, size_t len)
{
	char line[PD_SIGNATURE_LINE + PD_STAMP_LINE];
	size_t n = (size_t)snprintf(line, sizeof(line), "%s: ", name);
	struct curl_slist *grown, *last;

	if (n >= len || len > sizeof(line))
		return NULL;
	memset(line + n, '0', len - 1 - n);
	line[len - 1] = '\0';
	if ((grown = curl_slist_append(job->headers, line)) == NULL)
		return NULL;
	job->headers = grown;
	for (last = grown; last->next != NULL; last = last->next)
		continue;
	return last;
}

/* Sends the attempt to the round's next URL. -1 when it cannot even start
 * (out of memory); the caller records that and moves on. The headers that
 * say when it was sent are written by on_request_start. */
static int
attempt_start(struct pd_engine *e, struct pd_job *job)
{
	const char *url = job->pool[job->order[job->tried]];
	enum pd_method method = job->m.envelope.method;
	CURL *easy;

	job->rx_len = 0;
	job->rx_capped = 0;
	job->errbuf[0] = '\0';
	job->refused[0] = '\0';
	job->policy = e->cfg;
	job->signer = e->signer;
	curl_slist_free_all(job->headers);
	job->headers = NULL;
	job->signature_line = NULL;
	/* webhook-id is the message id on every attempt, so receivers can
	 * drop duplicates; "Expect:" stops curl from waiting for a 100. A GET
	 * has no body to give a type. The message's own headers never name
	 * one of these (envelope.c refuses them). */
	if ((method != PD_METHOD_GET && add_header(job, "Content-Type", job->m.content_type) != 0) ||
	    add_header(job, "webhook-id", job->m.id) != 0 ||
	    (job->stamp_line = add_placeholder(job, "webhook-timestamp", PD_STAMP_LINE)) == NULL ||
	    (e->signer->enabled &&
	     (job->signature_line = add_placeholder(job, "webhook-signature",
	                                            PD_SIGNATURE_LINE)) == NULL) ||
	    headers_each(job->m.envelope.headers, add_own_header, job) != 0 ||
	    (job->headers = curl_slist_append(job->headers, "Expect:")) == NULL)
		return -1;

	easy = e->nidle > 0 ? e->idle[--e->nidle] : curl_easy_init();
	if (easy == NULL)
		return -1;
	curl_easy_reset(easy);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	/* A GET carries no body (schedule refuses a payload with one); the
	 * other methods send the payload as a POST does, under their name. */
	if (method == PD_METHOD_GET) {
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, job->m.payload);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->m.payload_len);
		if (method != PD_METHOD_POST)
			curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method_name(method));
	}
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, job->headers);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "postdate/" PD_VERSION);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)job->m.timeout * 1000L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	/* No proxy from the environment: the policy checks what is reached. */
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, job);
	curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
	curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, on_request_start);
	curl_easy_setopt(easy, CURLOPT_PREREQDATA, job);
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
	if (job->host != NULL)
		job->host->inflight++;
	return 0;
}

/* Takes the job's transfer out of the multi handle, keeps its easy
 * handle for the next attempt and frees its host slot. */
static void
transfer_end(struct pd_engine *e, struct pd_job *job)
{
	struct pd_job *last = e->inflight[--e->active];

	curl_multi_remove_handle(e->multi, job->easy);
	e->idle[e->nidle++] = job->easy;
	job->easy = NULL;
	last->slot = job->slot;
	e->inflight[job->slot] = last;
	if (job->host != NULL)
		job->host->inflight--;
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

/* Hands the job back with its outcome. job->m.attempts counts this round
 * already (the claim counted it). */
static void
round_end(struct pd_engine *e, struct pd_job *job, enum pd_outcome outcome)
{
	size_t left = 0;
	int rounds = job->m.attempts;

	job->finished = time_now();
	for (size_t i = 0; i < job->npool; i++)
		left += !job->gone[i];
	if (outcome == PD_OUTCOME_RETRY && (rounds >= job->m.max_attempts || left == 0))
		outcome = PD_OUTCOME_FAILED;
	if (outcome == PD_OUTCOME_RETRY)
		job->next_attempt = job->finished +
		    retry_delay(e->cfg, rounds, job->retry_after, arc4random());
	job->outcome = outcome;
	job->host = NULL;
	job->next = NULL;
	*e->done_tail = job;
	e->done_tail = &job->next;
}

/* Parks job until its host has a slot free. */
static void
job_wait(struct pd_engine *e, struct pd_job *job)
{
	job->waiting_since = clock_monotonic();
	job->waiting_next = NULL;
	*e->waiting_tail = job;
	e->waiting_tail = &job->waiting_next;
	e->nwaiting++;
	if (job->host != NULL)
		job->host->waiting++;
}

/* Starts attempts until one is in flight, the job waits for its host,
 * or the round is over. */
static void
round_continue(struct pd_engine *e, struct pd_job *job)
{
	int index;

	while ((index = round_next(job)) >= 0) {
		if (e->finishing && job->nattempts > 0) {
			round_end(e, job, PD_OUTCOME_RELEASED);
			return;
		}
		/* API.md: never delivered after its ttl, so no attempt starts
		 * past it, however the round got here (an answer that came
		 * late, a wait for the host's slot). */
		if (job->m.expires != 0 && time_now() >= job->m.expires) {
			round_end(e, job, PD_OUTCOME_EXPIRED);
			return;
		}
		job->host = host_of(e, job->pool[index]);
		if (!host_may_start(e, job->host)) {
			job_wait(e, job);
			return;
		}
		if (attempt_start(e, job) == 0)
			return;
		attempt_record(job, time_now(), job->pool[index], 0,
		               "the dispatcher could not start the request (out of memory)", 0);
		job->tried++;
	}
	round_end(e, job, PD_OUTCOME_RETRY);
}

/* Starts the parked jobs whose host now has a slot, oldest first, and
 * gives back unsent those that waited too long (their leases were
 * counted from the claim) or that a stop has caught waiting. */
static void
engine_unpark(struct pd_engine *e)
{
	pd_ms now = clock_monotonic();
	struct pd_job *job = e->waiting;

	e->waiting = NULL;
	e->waiting_tail = &e->waiting;
	e->nwaiting = 0;
	while (job != NULL) {
		struct pd_job *next = job->waiting_next;

		job->waiting_next = NULL;
		if (job->host != NULL)
			job->host->waiting--;
		if (e->finishing || now - job->waiting_since >= PD_HOST_WAIT_MS)
			round_end(e, job, PD_OUTCOME_RELEASED);
		else if (!host_may_start(e, job->host)) {
			/* Back in the queue, in its place and with its wait so far. */
			*e->waiting_tail = job;
			e->waiting_tail = &job->waiting_next;
			e->nwaiting++;
			if (job->host != NULL)
				job->host->waiting++;
		} else
			round_continue(e, job);
		job = next;
	}
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

/* Keeps the transfer's answer as the round's last answer. */
static void
answer_keep(struct pd_job *job, int status, const char *type)
{
	char *body = job->body;

	free(job->content_type);
	job->content_type = type != NULL ? strdup(type) : NULL;
	job->status = status;
	/* The transfer's buffer becomes the answer's; the old one is reused. */
	job->body = job->rx;
	job->body_len = job->rx_len;
	job->rx = body;
	job->rx_len = 0;
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
	if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && job->rx_capped)) {
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
		answer_keep(job, (int)status, type);
	}
	if (status >= 300 && status < 400)
		error = "redirect not followed";
	else if (status == 410)
		error = "gone: the URL is dropped from the pool";
	else if (status == 0 && job->refused[0] != '\0')
		error = job->refused;
	else if (status == 0 && rc == CURLE_ABORTED_BY_CALLBACK)
		error = "the dispatcher could not sign the request";
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

	host_learn(e, job->host, status != 0, rc == CURLE_OPERATION_TIMEDOUT);
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
	if (e->waiting != NULL)
		engine_unpark(e);
	return engine_take_done(e);
}

struct pd_job *
engine_abort(struct pd_engine *e)
{
	pd_ms now = time_now();

	/* The transfers end unanswered and their rounds are given back; the
	 * requests were sent, so they are recorded, and the rounds count. */
	while (e->active > 0) {
		struct pd_job *job = e->inflight[e->active - 1];
		curl_off_t total_us = 0;
		int ms;

		curl_easy_getinfo(job->easy, CURLINFO_TOTAL_TIME_T, &total_us);
		ms = (int)(total_us / 1000);
		attempt_record(job, now - ms, job->pool[job->order[job->tried]], 0,
		               "the dispatcher stopped before an answer came", ms);
		transfer_end(e, job);
		round_end(e, job, PD_OUTCOME_RELEASED);
	}
	e->finishing = 1;
	engine_unpark(e);
	return engine_take_done(e);
}
