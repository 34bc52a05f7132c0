/*
 * baseline_queue: the queue benchmark's baseline. A minimal FastCGI
 * responder doing the least SQLite work a work queue can do, at the same
 * durability as postdate (WAL, synchronous FULL or NORMAL):
 *
 *   POST /api/receive  one claiming UPDATE ... RETURNING (up to `max`
 *                      due jobs, lowest priority first, leased for 30 s
 *                      by moving their due time, each with a random
 *                      receipt), in its own transaction;
 *   POST /api/ack      {"items": [{"id", "receipt"}, ...]}: one DELETE per
 *                      job whose receipt matches, all in one transaction.
 *
 * It checks nothing it does not need to and keeps no history, counts,
 * callbacks or attempts: the floor the real queue program is measured
 * against. `fill COUNT` (instead of serving) puts COUNT due jobs in.
 *
 * usage: baseline_queue DATABASE full|normal [fill COUNT]
 *        (serving: fd 0 is the FastCGI socket)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <fcgiapp.h>
#include <json-c/json.h>
#include <sqlite3.h>

#define MAX_BODY 65536
#define MAX_RECEIVE 100
#define LEASE_MS 30000

static long long
now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static sqlite3_stmt *
prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "baseline_queue: %s\n", sqlite3_errmsg(db));
		exit(1);
	}
	return st;
}

static void
answer(FCGX_Request *req, const char *status, const char *body)
{
	FCGX_FPrintF(req->out, "Status: %s\r\nContent-Type: application/json\r\n\r\n%s\n",
	             status, body);
}

/* The `max` of a form body, 1..MAX_RECEIVE (1 when absent). */
static int
receive_max(const char *body)
{
	const char *p = strstr(body, "max=");
	long n = p != NULL ? strtol(p + 4, NULL, 10) : 1;

	return n < 1 ? 1 : n > MAX_RECEIVE ? MAX_RECEIVE : (int)n;
}

static void
serve_receive(FCGX_Request *req, sqlite3_stmt *claim, const char *body)
{
	static char out[MAX_RECEIVE * 160 + 64];
	size_t len = 0;
	int n = 0, rc;

	sqlite3_bind_int64(claim, 1, now_ms());
	sqlite3_bind_int(claim, 2, receive_max(body));
	len += (size_t)snprintf(out, sizeof(out), "{\"messages\":[");
	while ((rc = sqlite3_step(claim)) == SQLITE_ROW && len < sizeof(out) - 160)
		len += (size_t)snprintf(out + len, sizeof(out) - len,
		    "%s{\"id\":\"%lld\",\"receipt\":\"%016llx\",\"payload\":\"%.80s\"}",
		    n++ > 0 ? "," : "", (long long)sqlite3_column_int64(claim, 0),
		    (unsigned long long)sqlite3_column_int64(claim, 1),
		    (const char *)sqlite3_column_text(claim, 2));
	sqlite3_reset(claim);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		answer(req, "503 Busy", "{\"error\":\"busy\"}");
		return;
	}
	snprintf(out + len, sizeof(out) - len, "]}");
	answer(req, "200 OK", out);
}

static void
serve_ack(FCGX_Request *req, sqlite3 *db, sqlite3_stmt *del, const char *body)
{
	json_object *doc = json_tokener_parse(body), *items;
	size_t n;
	int acked = 0, ok;
	char out[64];

	if (doc == NULL || !json_object_object_get_ex(doc, "items", &items) ||
	    !json_object_is_type(items, json_type_array)) {
		json_object_put(doc);
		answer(req, "400 Bad Request", "{\"error\":\"items\"}");
		return;
	}
	n = json_object_array_length(items);
	ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	for (size_t i = 0; ok && i < n; i++) {
		json_object *item = json_object_array_get_idx(items, i), *id, *receipt;

		if (!json_object_object_get_ex(item, "id", &id) ||
		    !json_object_object_get_ex(item, "receipt", &receipt))
			continue;
		sqlite3_bind_int64(del, 1, strtoll(json_object_get_string(id), NULL, 10));
		sqlite3_bind_int64(del, 2, (long long)strtoull(json_object_get_string(receipt),
		                                               NULL, 16));
		ok = sqlite3_step(del) == SQLITE_DONE;
		acked += sqlite3_changes(db);
		sqlite3_reset(del);
	}
	json_object_put(doc);
	if (!ok || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		answer(req, "503 Busy", "{\"error\":\"busy\"}");
		return;
	}
	snprintf(out, sizeof(out), "{\"acked\":%d}", acked);
	answer(req, "200 OK", out);
}

static int
fill(sqlite3 *db, long count)
{
	sqlite3_stmt *ins = prepare(db, "INSERT INTO jobs (priority, due, payload) "
	                                "VALUES (0, ?1, 'bench job')");
	long long due = now_ms();

	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (long i = 0; i < count; i++) {
		sqlite3_bind_int64(ins, 1, due);
		if (sqlite3_step(ins) != SQLITE_DONE)
			return 1;
		sqlite3_reset(ins);
	}
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : 1;
}

int
main(int argc, char **argv)
{
	FCGX_Request req;
	sqlite3 *db;
	sqlite3_stmt *claim, *del;
	char pragmas[512];
	static char body[MAX_BODY + 1];

	if ((argc != 3 && argc != 5) ||
	    (strcmp(argv[2], "full") != 0 && strcmp(argv[2], "normal") != 0) ||
	    (argc == 5 && strcmp(argv[3], "fill") != 0)) {
		fprintf(stderr, "usage: baseline_queue DATABASE full|normal [fill COUNT]\n");
		return 2;
	}
	if (sqlite3_open(argv[1], &db) != SQLITE_OK)
		return 1;
	sqlite3_busy_timeout(db, 5000);
	snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
	         "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, "
	         "priority INTEGER NOT NULL, due INTEGER NOT NULL, receipt INTEGER, payload TEXT);"
	         "CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (priority, due);", argv[2]);
	if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "baseline_queue: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	if (argc == 5)
		return fill(db, strtol(argv[4], NULL, 10));

	/* A lease is a due time in the future: leased jobs leave the range
	 * that the next claim reads. */
	claim = prepare(db, "UPDATE jobs SET due = ?1 + ?3, receipt = random() "
	                    "WHERE id IN (SELECT id FROM jobs WHERE due <= ?1 "
	                    "ORDER BY priority, due, id LIMIT ?2) "
	                    "RETURNING id, receipt, payload");
	sqlite3_bind_int64(claim, 3, LEASE_MS);
	del = prepare(db, "DELETE FROM jobs WHERE id = ?1 AND receipt = ?2");
	FCGX_Init();
	FCGX_InitRequest(&req, 0, 0);
	while (FCGX_Accept_r(&req) >= 0) {
		const char *uri = FCGX_GetParam("DOCUMENT_URI", req.envp);
		int n = FCGX_GetStr(body, MAX_BODY, req.in);

		body[n > 0 ? n : 0] = '\0';
		if (uri != NULL && strcmp(uri, "/api/receive") == 0)
			serve_receive(&req, claim, body);
		else if (uri != NULL && strcmp(uri, "/api/ack") == 0)
			serve_ack(&req, db, del, body);
		else
			answer(&req, "404 Not Found", "{\"error\":\"no such route\"}");
		FCGX_Finish_r(&req);
	}
	return 0;
}
