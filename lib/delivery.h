/*
 * delivery.h: the dispatcher's HTTP side: signatures, backoff, and rounds
 * of attempts over libcurl's multi interface.
 */
#ifndef POSTDATE_DELIVERY_H
#define POSTDATE_DELIVERY_H

#include "postdate.h"
#include "store.h"

/* ---- sign.c: Standard Webhooks signatures ---- */

#define PD_SIGNATURE_BUF 64      /* "v1," + base64 of 32 bytes + NUL */

struct pd_signer {
	int enabled;              /* 0 when no signing_secret is configured */
	unsigned char key[66];
	size_t keylen;
};

/* Decodes a "whsec_<base64>" secret (NULL: signing off). */
int sign_init(struct pd_signer *sg, const char *secret);

/* Writes "v1,<base64 HMAC-SHA256 of id.timestamp.body>" into out. */
int sign_webhook(const struct pd_signer *sg, const char *id, long long timestamp,
                 const char *body, size_t len, char out[PD_SIGNATURE_BUF]);

/* The two header lines that say when a request was sent, written when it
 * is (not when it was queued), in place into lines made once at their
 * longest: "webhook-timestamp: <seconds>" into stamp (room bytes, NUL
 * included), and when signing is enabled "webhook-signature: v1,..." into
 * signature (PD_SIGNATURE_LINE bytes). -1 if they do not fit or the HMAC
 * fails. */
#define PD_STAMP_LINE 40         /* "webhook-timestamp: " + 20 digits + NUL */
#define PD_SIGNATURE_LINE (19 + PD_SIGNATURE_BUF)
int sign_stamp_lines(const struct pd_signer *sg, const char *id, long long timestamp,
                     const char *body, size_t len, char *stamp, size_t room, char *signature);

/* ---- retry.c: when a failed round is tried again ---- */

/* How long to wait after rounds_failed failed rounds: retry_base *
 * 2^(rounds_failed-1) s times a jitter factor from 0.8 to 1.2 (chosen by
 * random), at least retry_after ms, at most retry_max. */
pd_ms retry_delay(const struct pd_config *cfg, int rounds_failed, pd_ms retry_after,
                  uint32_t random);

/* A Retry-After header value (seconds, or an HTTP date) as ms from now;
 * 0 when absent, malformed or in the past. */
pd_ms retry_after_parse(const char *value, pd_ms now);

/* ---- delivery.c: rounds of HTTP attempts over libcurl's multi interface ---- */

/* How a round ended. */
enum pd_outcome {
	PD_OUTCOME_DELIVERED,     /* a target answered 2xx */
	PD_OUTCOME_RETRY,         /* every target failed; another round later */
	PD_OUTCOME_FAILED,        /* max_attempts rounds done, or no target left */
	PD_OUTCOME_EXPIRED,       /* its ttl ran out before the next attempt: none
	                           * is sent after it */
	PD_OUTCOME_RELEASED       /* stopped before the round ended: give it back
	                           * (the round counts if a request was sent) */
};

/* One HTTP attempt as delivery records it (the strings are the job's). */
struct pd_attempt_record {
	struct pd_attempt a;
	char *error;              /* owned copy behind a.error */
};

struct pd_host;                    /* delivery.c: a host:port's share of the slots */

/* A claimed message on its way: one round of attempts over its pool. */
struct pd_job {
	struct pd_message m;
	struct store_lease lease;          /* what the store gave with the claim */
	char *pool[PD_MAX_URLS];           /* the URLs, in the message's order */
	size_t npool;
	int gone[PD_MAX_URLS];             /* answered 410 or refused: dropped for good */
	unsigned char order[PD_MAX_URLS];  /* this round's shuffled pool */
	size_t norder, tried;
	struct pd_attempt_record attempts[PD_MAX_URLS];
	size_t nattempts;
	pd_ms retry_after;                 /* the longest Retry-After this round (ms) */

	/* The transfer in flight. */
	void *easy;                        /* CURL * */
	int slot;                          /* in the engine's list of transfers */
	struct pd_host *host;              /* whose slot it holds, or waits for */
	struct curl_slist *headers;
	struct curl_slist *stamp_line;     /* webhook-timestamp, written when sent */
	struct curl_slist *signature_line; /* webhook-signature, or NULL */
	char errbuf[256];                  /* CURL_ERROR_SIZE */
	const struct pd_config *policy;    /* whose allow_targets applies */
	const struct pd_signer *signer;    /* signs it when it is sent */
	char refused[160];                 /* why the policy refused to connect, or "" */
	char *rx;                          /* this transfer's answer so far */
	size_t rx_len;
	int rx_capped;                     /* past PD_MAX_RESPONSE: the rest dropped */
	pd_ms waiting_since;               /* parked for a host slot: since when
	                                    * (clock_monotonic) */
	struct pd_job *waiting_next;       /* in the engine's queue of parked jobs */

	/* The last answer any target gave this round, for the callback report. */
	int status;
	char *content_type;
	char *body;
	size_t body_len;

	/* The outcome, once the round is over. */
	enum pd_outcome outcome;
	int accepted;                      /* index into pool, or -1 */
	pd_ms finished;
	pd_ms next_attempt;                /* for PD_OUTCOME_RETRY */
	int lease_lost;                    /* another dispatcher took it over */
	int orphaned;                      /* claimed after an earlier claim's lease ran
	                                    * out unsettled: not delivered this time */
	struct pd_job *next;               /* in the engine's list of finished jobs */
};

/* Makes a job of a claimed message (which it takes over; m->attempts
 * counts the round being started); NULL when out of memory (m is then
 * freed). */
struct pd_job *job_new(struct pd_message *m, const struct store_lease *lease);

/* The URLs dropped from the pool for good, as a store_lease's gone bits. */
unsigned job_gone(const struct pd_job *job);

void job_free(struct pd_job *job);

struct pd_engine;

/* concurrency and host_concurrency come from cfg; sg signs when enabled. */
struct pd_engine *engine_new(const struct pd_config *cfg, const struct pd_signer *sg, int verbose);
void engine_free(struct pd_engine *e);

/*
 * Slots. At most `concurrency` transfers are in flight. The last quarter
 * of them only go to hosts (host:port) whose last attempt was answered, or
 * that have nothing in flight: hosts that hang, or have not answered yet,
 * cannot take every slot from hosts that answer. Each host may hold a
 * share, host_concurrency at first, halved by each time-out and grown by
 * one with each answer. A job whose host has no slot free waits in the
 * engine (its timeout not running) and is given back, unsent, if it waits
 * longer than PD_HOST_WAIT_MS.
 */
#define PD_HOST_WAIT_MS 5000

/* Writes which host a URL's slots are counted against: "scheme://host:port",
 * lower case, the scheme's port when none is given, userinfo left out. */
#define PD_HOST_KEY_MAX 300
void delivery_host_key(const char *url, char key[PD_HOST_KEY_MAX]);

/* Starts a round of job: shuffles its pool and sends the first attempt
 * (or parks it until its host has a slot). Before each attempt of a round
 * (the first, the next URL of the pool, a parked job's) the message's ttl
 * is checked: once m.expires has passed the round ends PD_OUTCOME_EXPIRED
 * and nothing more is sent. */
void engine_start(struct pd_engine *e, struct pd_job *job);

/* Moves transfers on, waiting at most timeout_ms for something to happen;
 * then returns the jobs whose round ended (a list linked by next), or NULL. */
struct pd_job *engine_run(struct pd_engine *e, int timeout_ms);

/* Ends a wait in engine_run at once; callable from any thread. */
void engine_wakeup(struct pd_engine *e);

/* How many jobs have a transfer in flight. */
int engine_active(const struct pd_engine *e);

/* How many jobs the engine holds: in flight or parked for a host slot. */
int engine_jobs(const struct pd_engine *e);

/* How many more jobs engine_start may be given now: free transfer slots,
 * while the jobs parked for a busy host number at most `concurrency`. */
int engine_room(const struct pd_engine *e);

/* The latest time (clock_monotonic) at which engine_run must be called
 * for the engine's own deadlines (a parked job's wait), or 0 if none. */
pd_ms engine_next_deadline(const struct pd_engine *e);

/* From now on a round ends after its current attempt (PD_OUTCOME_RELEASED
 * if no target accepted): for stopping on a signal. */
void engine_finish_rounds(struct pd_engine *e);

/* Ends every transfer at once; their jobs come back released, the
 * requests that were in flight recorded as such. */
struct pd_job *engine_abort(struct pd_engine *e);

#endif
