/*
 * store_common.c: the parts of the store that are the same on every
 * engine: fingerprints of requests, lease tokens and receipts, and the
 * time arithmetic of recurring definitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "postdate.h"
#include "store_engine.h"


/* The pool less the URLs whose bit is set in gone (malloc'd). */
char *
urls_left(const char *pool, unsigned gone)
{
	char *out = malloc(strlen(pool) + 1), *o = out;
	const char *p = pool;

	if (out == NULL)
		return NULL;
	for (int i = 0; *p != '\0'; i++) {
		size_t len = strcspn(p, "\n");

		if (!(gone & (1u << i))) {
			if (o != out)
				*o++ = '\n';
			memcpy(o, p, len);
			o += len;
		}
		p += len + (p[len] == '\n');
	}
	*o = '\0';
	return out;
}

/* Starts a fingerprint with a message's method and headers, only when they
 * are not the defaults (a POST without headers of its own), so that a
 * message stored before they existed keeps the fingerprint it had. What
 * follows begins with a URL or, for a queue's message, a NUL: never the
 * 0x01 that starts this part, so no request's bytes can pass for another's
 * (the payload, last and of any bytes, could otherwise end in what looks
 * like an envelope). 1 on success. */
static int
envelope_digest(EVP_MD_CTX *ctx, const struct pd_envelope *e)
{
	const char *method = method_name(e->method);
	const char *headers = e->headers != NULL ? e->headers : "";

	if (e->method == PD_METHOD_POST && e->headers == NULL)
		return 1;
	return EVP_DigestUpdate(ctx, "\001envelope", 10) == 1 &&
	    EVP_DigestUpdate(ctx, method, strlen(method) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, headers, strlen(headers) + 1) == 1;
}

/* SHA-256 over what a schedule request asked for, its times aside (a
 * repeated "delay=30s" names another instant each time): a reused
 * idempotency key with other contents is a different request. */
int
fingerprint(const struct pd_message *m, unsigned char out[FINGERPRINT_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char limits[64];
	int ok;

	if (ctx == NULL)
		return -1;
	snprintf(limits, sizeof(limits), "%d %d %d", m->max_attempts, m->timeout, m->priority);
	/* Each part with its NUL, so that no two splits of the bytes agree. */
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    envelope_digest(ctx, &m->envelope) &&
	    EVP_DigestUpdate(ctx, m->urls, strlen(m->urls) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, m->content_type, strlen(m->content_type) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, m->callback != NULL ? m->callback : "",
	                     m->callback != NULL ? strlen(m->callback) + 1 : 0) == 1 &&
	    EVP_DigestUpdate(ctx, limits, strlen(limits) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, m->queue != NULL ? m->queue : "",
	                     m->queue != NULL ? strlen(m->queue) + 1 : 0) == 1 &&
	    EVP_DigestUpdate(ctx, m->topic != NULL ? m->topic : "",
	                     m->topic != NULL ? strlen(m->topic) + 1 : 0) == 1 &&
	    EVP_DigestUpdate(ctx, m->payload, m->payload_len) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* A fresh lease token: random, never 0 (0 means "not leased"). */
int64_t
new_token(void)
{
	uint64_t t = 0;

	if (RAND_bytes((unsigned char *)&t, sizeof(t)) != 1)
		return 0;
	t >>= 1;
	return t != 0 ? (int64_t)t : 1;
}

int
receipt_new(struct receipt *r)
{
	/* One RAND_bytes call per RECEIPT_POOL receipts, not one each: its
	 * fixed cost per call was a tenth of a receive's instructions. */
	enum { RECEIPT_POOL = 64 };
	static __thread unsigned char pool[RECEIPT_POOL * sizeof(r->bytes)];
	static __thread size_t used = sizeof(pool);
	uint64_t t = 0;

	if (used == sizeof(pool)) {
		if (RAND_bytes(pool, sizeof(pool)) != 1)
			return -1;
		used = 0;
	}
	memcpy(r->bytes, pool + used, sizeof(r->bytes));
	OPENSSL_cleanse(pool + used, sizeof(r->bytes));
	used += sizeof(r->bytes);
	memcpy(&t, r->bytes, sizeof(t));
	t >>= 1;
	r->token = t != 0 ? (int64_t)t : 1;
	return 0;
}

void
receipt_format(const struct receipt *r, char out[PD_RECEIPT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[r->bytes[i] >> 4];
		out[2 * i + 1] = hex[r->bytes[i] & 15];
	}
	out[PD_RECEIPT_LEN] = '\0';
}

/* Parses a receipt's text; -1 unless it is PD_RECEIPT_LEN lowercase hex digits. */
int
receipt_parse(const char *text, struct receipt *r)
{
	uint64_t t = 0;

	if (text == NULL || strlen(text) != PD_RECEIPT_LEN)
		return -1;
	for (int i = 0; i < PD_RECEIPT_LEN; i++) {
		const char *hex = "0123456789abcdef", *d = strchr(hex, text[i]);

		if (text[i] == '\0' || d == NULL)
			return -1;
		if (i % 2 == 0)
			r->bytes[i / 2] = (unsigned char)((d - hex) << 4);
		else
			r->bytes[i / 2] |= (unsigned char)(d - hex);
	}
	memcpy(&t, r->bytes, sizeof(t));
	t >>= 1;
	r->token = t != 0 ? (int64_t)t : 1;
	return 0;
}

void
recurring_free(struct pd_recurring *r)
{
	free(r->name);
	free(r->cron);
	free(r->tz);
	message_free(&r->message);
	memset(r, 0, sizeof(*r));
}

/* The zone a definition's fields are read in: NULL for UTC itself. */
int
recurring_zone(const char *tz, struct pd_tz **zone)
{
	*zone = NULL;
	if (strcmp(tz, "UTC") == 0)
		return 0;
	return tz_load(tz, zone);
}

int
recurring_next_after(const char *cron, const char *tz, pd_ms after, pd_ms *out,
                     const char **why)
{
	struct pd_cron c;
	struct pd_tz *zone;
	int rc;

	if (cron_parse(cron, &c, why) != 0)
		return -1;
	if (recurring_zone(tz, &zone) != 0) {
		*why = "not a time zone known to this system";
		return -1;
	}
	rc = cron_next(&c, zone, after, out, why);
	tz_free(zone);
	return rc;
}

/*
 * The latest occurrence at or before now, given one (from) that is: after
 * a gap with no dispatcher only that one is made. Occurrences are whole
 * minutes, so a window of 60 s before now holds at most one; windows twice
 * as long each time find the latest in a few steps however long the gap,
 * and only the occurrences of the last window are walked through.
 */
pd_ms
latest_occurrence_by(const struct pd_cron *c, const struct pd_tz *zone, pd_ms from, pd_ms now)
{
	const char *why;
	pd_ms best = from, t;

	for (pd_ms window = 60 * PD_MS_PER_S;; window *= 2) {
		pd_ms start = now - window > best ? now - window : best;

		if (cron_next(c, zone, start, &t, &why) == 0 && t <= now) {
			best = t;
			while (cron_next(c, zone, best, &t, &why) == 0 && t <= now)
				best = t;
			return best;
		}
		if (start == best)
			return best;
	}
}

void
recurring_occurrence(struct pd_recurring *r, pd_ms at, struct pd_message *m)
{
	memset(m, 0, sizeof(*m));
	m->state = PD_PENDING;
	m->due = m->next_attempt = at;
	m->urls = r->message.urls;
	m->queue = r->message.queue;
	m->payload = r->message.payload;
	m->payload_len = r->message.payload_len;
	m->content_type = r->message.content_type;
	m->callback = r->message.callback;
	m->max_attempts = r->message.max_attempts;
	m->timeout = r->message.timeout;
	m->priority = r->message.priority;
	m->expires = r->ttl != 0 ? at + r->ttl : 0;
	m->envelope = r->message.envelope;
	m->recurring = r->id;
	m->topic = r->message.topic;
}
