/* test_writer_turn.c: the turn to write an SQLite database across
 * processes (writer_turn.c), between forked processes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "postdate.h"
#include "store_engine.h"
#include "unit.h"

static char dir[] = "/tmp/pd-turn-XXXXXX";
static char database[128];

static long long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A child that takes the turn, says so on fd, then holds it for hold_ms
 * (or until killed) and gives it back. */
static pid_t
holder(int fd, int hold_ms)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct writer_turn *t = writer_turn_open(database);

		if (t == NULL || writer_turn_take(t, 1000) != 0)
			_exit(1);
		if (write(fd, "x", 1) != 1)
			_exit(1);
		usleep((useconds_t)hold_ms * 1000);
		writer_turn_give(t);
		_exit(0);
	}
	return pid;
}

static void
test_a_writer_waits_for_the_turn_and_gets_it_when_given_back(void)
{
	struct writer_turn *t = writer_turn_open(database);
	int fds[2], status = 0;
	long long asked;
	char c;
	pid_t pid;

	CHECK(t != NULL && pipe(fds) == 0);
	pid = holder(fds[1], 300);
	CHECK(read(fds[0], &c, 1) == 1);
	asked = now_ms();
	CHECK_INT(writer_turn_take(t, 100), -1);           /* held elsewhere: times out */
	CHECK(now_ms() - asked >= 90);
	CHECK_INT(writer_turn_take(t, 5000), 0);
	CHECK(now_ms() - asked < 1000);                    /* given back after 300 ms */
	writer_turn_give(t);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fds[0]);
	close(fds[1]);
	writer_turn_close(t);
}

static void
test_a_holder_killed_with_the_turn_passes_it_on(void)
{
	struct writer_turn *t = writer_turn_open(database);
	int fds[2];
	long long asked;
	char c;
	pid_t pid;

	CHECK(t != NULL && pipe(fds) == 0);
	pid = holder(fds[1], 60000);
	CHECK(read(fds[0], &c, 1) == 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	asked = now_ms();
	CHECK_INT(writer_turn_take(t, 5000), 0);
	CHECK(now_ms() - asked < 1000);
	writer_turn_give(t);
	/* ... and it stays usable. */
	CHECK_INT(writer_turn_take(t, 1000), 0);
	writer_turn_give(t);
	close(fds[0]);
	close(fds[1]);
	writer_turn_close(t);
}

/* Regression guard: a turn file outlives a reboot, and a holder that went
 * down with the machine left it locked, with no process to pass it on. */
static void
test_a_turn_left_locked_by_an_earlier_boot_is_set_up_again(void)
{
	struct writer_turn *t = writer_turn_open(database);
	char turn[160];
	FILE *f;
	int status = 0;
	pid_t pid;

	CHECK(t != NULL && writer_turn_take(t, 1000) == 0);   /* locked, as by the old boot */
	snprintf(turn, sizeof(turn), "%s-turn", database);
	CHECK((f = fopen(turn, "r+")) != NULL);
	if (f != NULL) {
		fseek(f, 4, SEEK_SET);                        /* the boot id, after the magic */
		fputs("00000000-0000-0000-0000-000000000000", f);
		fclose(f);
	}
	pid = fork();
	if (pid == 0) {
		struct writer_turn *again = writer_turn_open(database);
		long long asked = now_ms();

		_exit(again != NULL && writer_turn_take(again, 3000) == 0 &&
		      now_ms() - asked < 1000 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	writer_turn_close(t);
}

static void
test_a_turn_that_cannot_be_made_is_none_and_taking_it_fails(void)
{
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/no/such/folder/postdate.db", dir);
	CHECK(writer_turn_open(missing) == NULL);
	CHECK_INT(writer_turn_take(NULL, 10), -1);
	writer_turn_close(NULL);
}

static const struct unit_test tests[] = {
	UNIT(test_a_writer_waits_for_the_turn_and_gets_it_when_given_back),
	UNIT(test_a_holder_killed_with_the_turn_passes_it_on),
	UNIT(test_a_turn_left_locked_by_an_earlier_boot_is_set_up_again),
	UNIT(test_a_turn_that_cannot_be_made_is_none_and_taking_it_fails),
};

int
main(void)
{
	char turn[160];
	FILE *f;
	int rc;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(database, sizeof(database), "%s/postdate.db", dir);
	if ((f = fopen(database, "w")) == NULL)
		return 1;
	fclose(f);
	rc = unit_run("writer_turn", tests, UNIT_COUNT(tests));
	snprintf(turn, sizeof(turn), "%s-turn", database);
	unlink(turn);
	unlink(database);
	rmdir(dir);
	return rc;
}
