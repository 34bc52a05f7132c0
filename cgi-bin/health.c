/*
 * health: GET /api/health, without a token. Tells a monitor whether the
 * database answers, whether the other FastCGI programs answer on their
 * sockets, and how late the most overdue pending message is, which is how
 * an operator sees that no dispatcher is running.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* For --help; http_main adds the usage line, the options and the exit status. */
static const char description[] =
"The FastCGI responder for GET /api/health: {\"ok\": true, \"pending\": n,\n"
"\"delivering\": n, \"oldest_overdue_s\": x}, or 503 with ok false when the\n"
"database cannot be read, or when one of the other programs does not answer\n"
"on its socket: health looks for schedule.sock, status.sock, cancel.sock,\n"
"queue.sock, topics.sock and recurring.sock in the folder of its own Unix\n"
"socket, sends each a FastCGI OPTIONS request (answered 405, or 404 by the\n"
"programs of several routes, before the token or the database is looked\n"
"at) and names those that refuse or do not answer within 1 s in \"down\",\n"
"e.g. {\"ok\": false, \"down\":\n"
"[\"cancel\"], ...}. \"delivering\" counts rounds in flight: with messages\n"
"overdue it tells busy dispatchers from none running.\n"
"Needs no token. Run it under a FastCGI server behind nginx or Apache;\n"
"started without one (or on a TCP socket) it checks only the database, and as\n"
"a plain-CGI program it answers a single request: `REQUEST_METHOD=GET health\n"
"-c FILE </dev/null` exits 1 with the reason when FILE cannot be used.\n";

static const char example[] =
"curl -s http://127.0.0.1:8080/api/health";

/* The programs whose sockets sit beside health's own (as under
 * postdate-stack, /run/postdate with the systemd units, and the README's
 * spawn-fcgi lines), and how long each may take to answer. */
static const char *const sibling_programs[] = { "schedule", "status", "cancel", "queue",
                                                "topics", "recurring" };
#define PROBE_TIMEOUT_MS 1000

/* The folder of the Unix socket that health serves on (fd 0 under a
 * FastCGI server), with a trailing slash; "" when there is none. */
static const char *
own_socket_folder(void)
{
	static char folder[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	static int looked;
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	char *slash;

	if (looked)
		return folder;
	looked = 1;
	memset(&sa, 0, sizeof(sa));
	if (getsockname(0, (struct sockaddr *)&sa, &len) != 0 || sa.sun_family != AF_UNIX ||
	    len <= offsetof(struct sockaddr_un, sun_path) || len > sizeof(sa) ||
	    sa.sun_path[0] == '\0')
		return folder;
	memcpy(folder, sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
	slash = strrchr(folder, '/');
	if (slash == NULL)
		folder[0] = '\0';
	else
		slash[1] = '\0';
	return folder;
}

/* One FastCGI record header. */
static size_t
fcgi_record(unsigned char *out, int type, size_t content_len)
{
	out[0] = 1;                               /* FCGI_VERSION_1 */
	out[1] = (unsigned char)type;
	out[2] = 0;
	out[3] = 1;                               /* request id 1 */
	out[4] = (unsigned char)(content_len >> 8);
	out[5] = (unsigned char)content_len;
	out[6] = 0;
	out[7] = 0;
	return 8;
}

/* Whether the FastCGI program on the socket at path answers a request
 * within timeout_ms. The request is an OPTIONS, which every postdate program
 * answers 405 before it reads a token or the database; the first record of
 * the answer is enough. A socket nobody listens on refuses at once; one
 * whose workers are all busy or hung does not answer in time. */
static int
fastcgi_answers(const char *path, int timeout_ms)
{
	static const char param_name[] = "REQUEST_METHOD", param_value[] = "OPTIONS";
	unsigned char req[96], reply[8];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd pfd;
	size_t n = 0, nv = 2 + sizeof(param_name) - 1 + sizeof(param_value) - 1;
	ssize_t got;
	int fd, ok = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	/* A Unix socket connects at once or not at all (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto done;
	/* FCGI_BEGIN_REQUEST (responder, close after), FCGI_PARAMS with one
	 * pair, an empty FCGI_PARAMS and an empty FCGI_STDIN. */
	n += fcgi_record(req + n, 1, 8);
	memcpy(req + n, "\0\1\0\0\0\0\0\0", 8);
	n += 8;
	n += fcgi_record(req + n, 4, nv);
	req[n++] = (unsigned char)(sizeof(param_name) - 1);
	req[n++] = (unsigned char)(sizeof(param_value) - 1);
	memcpy(req + n, param_name, sizeof(param_name) - 1);
	n += sizeof(param_name) - 1;
	memcpy(req + n, param_value, sizeof(param_value) - 1);
	n += sizeof(param_value) - 1;
	n += fcgi_record(req + n, 4, 0);
	n += fcgi_record(req + n, 5, 0);
	if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n)
		goto done;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, timeout_ms) != 1)
		goto done;
	got = recv(fd, reply, sizeof(reply), 0);
	/* FCGI_STDOUT or FCGI_END_REQUEST from a FastCGI program. */
	ok = got >= 2 && reply[0] == 1 && (reply[1] == 6 || reply[1] == 3);
done:
	close(fd);
	return ok;
}

/* The names of the sibling programs that do not answer, as a JSON array
 * (NULL when all answer, or when health has no socket folder to look in),
 * and a sentence naming them in error. */
static json_object *
programs_down(char *error, size_t size)
{
	const char *folder = own_socket_folder();
	json_object *down;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
	int ndown = 0;
	size_t used;

	if (folder[0] == '\0')
		return NULL;
	down = json_object_new_array();
	used = (size_t)snprintf(error, size, "these FastCGI programs do not answer on their sockets:");
	for (size_t i = 0; i < sizeof(sibling_programs) / sizeof(sibling_programs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s.sock", folder, sibling_programs[i]);
		if (fastcgi_answers(path, PROBE_TIMEOUT_MS))
			continue;
		json_object_array_add(down, json_object_new_string(sibling_programs[i]));
		if (used < size)
			used += (size_t)snprintf(error + used, size - used, "%s %s",
			                         ndown == 0 ? "" : ",", sibling_programs[i]);
		ndown++;
	}
	if (ndown == 0) {
		json_object_put(down);
		return NULL;
	}
	return down;
}

static void
handle_health(struct pd_request *r)
{
	struct pd_app *app = http_app(r);
	json_object *o = json_object_new_object();
	long counts[PD_NSTATES] = { 0 };
	pd_ms earliest = 0, overdue, now = time_now();
	json_object *down;
	char text[32], error[256];

	if (http_fields(r)->n != 0) {
		json_object_put(o);
		http_error(r, 400, "unknown field", http_fields(r)->v[0].name);
		return;
	}
	if (app->store == NULL || store_health(app->store, counts, &earliest) != STORE_OK) {
		json_object_object_add(o, "ok", json_object_new_boolean(0));
		json_object_object_add(o, "error", json_object_new_string("the database cannot be read"));
		if ((down = programs_down(error, sizeof(error))) != NULL)
			json_object_object_add(o, "down", down);
		http_reply(r, 503, NULL, o);
		return;
	}
	down = programs_down(error, sizeof(error));
	json_object_object_add(o, "ok", json_object_new_boolean(down == NULL));
	if (down != NULL) {
		json_object_object_add(o, "error", json_object_new_string(error));
		json_object_object_add(o, "down", down);
	}
	json_object_object_add(o, "pending", json_object_new_int64(counts[PD_PENDING]));
	/* Rounds in flight, from the same snapshot: overdue messages beside
	 * deliveries in flight mean a dispatcher that is busy, not one that is
	 * missing. */
	json_object_object_add(o, "delivering", json_object_new_int64(counts[PD_DELIVERING]));
	/* Milliseconds as seconds, written as such (not 0.57499999999999996). */
	overdue = earliest != 0 && earliest < now ? now - earliest : 0;
	snprintf(text, sizeof(text), "%lld.%03lld", (long long)(overdue / 1000),
	         (long long)(overdue % 1000));
	json_object_object_add(o, "oldest_overdue_s",
	    json_object_new_double_s((double)overdue / 1000.0, text));
	http_reply(r, down != NULL ? 503 : 200, NULL, o);
}

static const struct pd_route route = {
	.name = "health",
	.method = "GET",
	.needs_auth = 0,
	.handles_no_store = 1,
	.description = description,
	.example = example,
	.handle = handle_health,
};

int
main(int argc, char **argv)
{
	return http_main(argc, argv, &route);
}
