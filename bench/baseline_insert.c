/*
 * baseline_insert: the ingest benchmark's baseline. A minimal FastCGI
 * responder that inserts one row per request and commits, at the same
 * durability as postdate (WAL, synchronous FULL or NORMAL), and answers 201.
 * It parses nothing and checks nothing: the floor any real schedule
 * endpoint is measured against.
 *
 * usage: baseline_insert DATABASE full|normal   (fd 0: the FastCGI socket)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>
#include <sqlite3.h>

int
main(int argc, char **argv)
{
	static const char reply[] =
	    "Status: 201 Created\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}\n";
	FCGX_Request req;
	sqlite3 *db;
	sqlite3_stmt *ins;
	char pragmas[256], body[4096];

	if (argc != 3 || (strcmp(argv[2], "full") != 0 && strcmp(argv[2], "normal") != 0)) {
		fprintf(stderr, "usage: baseline_insert DATABASE full|normal\n");
		return 2;
	}
	if (sqlite3_open(argv[1], &db) != SQLITE_OK)
		return 1;
	sqlite3_busy_timeout(db, 5000);
	snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
	         "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB, at INTEGER);",
	         argv[2]);
	if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO t (body, at) VALUES (?1, unixepoch())", -1, &ins,
	                       NULL) != SQLITE_OK) {
		fprintf(stderr, "baseline_insert: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	FCGX_Init();
	FCGX_InitRequest(&req, 0, 0);
	while (FCGX_Accept_r(&req) >= 0) {
		int n = FCGX_GetStr(body, sizeof(body), req.in);

		sqlite3_bind_blob(ins, 1, body, n > 0 ? n : 0, SQLITE_STATIC);
		/* Autocommit: one transaction, one fsync, per request. */
		if (sqlite3_step(ins) != SQLITE_DONE)
			FCGX_PutS("Status: 503 Busy\r\n\r\n", req.out);
		else
			FCGX_PutStr(reply, sizeof(reply) - 1, req.out);
		sqlite3_reset(ins);
		FCGX_Finish_r(&req);
	}
	return 0;
}
