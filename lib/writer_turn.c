/*
 * writer_turn.c: the turn to write an SQLite database, shared by every
 * postdate process on the machine that writes it.
 *
 * SQLite has one writer at a time, and a writer that finds the database
 * locked can only sleep and try again (store_sqlite.c's on_busy). Between
 * two queue processes, each committing a batch that holds the lock for one
 * sync to disk, that meant about five sleeps and wake-ups per commit. Here
 * the writers queue on a mutex instead, and the next is woken the moment
 * the turn is free: a process-shared, robust pthread mutex in a small file
 * beside the database (DATABASE-turn), mapped by each process. Robust: a
 * process killed while it holds the turn passes it on (EOWNERDEAD), it is
 * not lost. The turn is an optimisation only: SQLite's lock still decides,
 * so a writer that cannot open the file, or waits past the busy timeout,
 * goes on without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "postdate.h"
#include "store_engine.h"

#define TURN_MAGIC 0x70647475u    /* "pdtu": the mutex in the file is set up */
#define BOOT_ID_LEN 36

struct turn_page {
	uint32_t magic;
	char boot_id[BOOT_ID_LEN];   /* the boot it was set up in */
	pthread_mutex_t lock;
};

struct writer_turn {
	struct turn_page *page;
};

/* The kernel's id of this boot, or "" when it cannot be read. */
static void
read_boot_id(char out[BOOT_ID_LEN])
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	memset(out, 0, BOOT_ID_LEN);
	if (f != NULL) {
		if (fread(out, 1, BOOT_ID_LEN, f) != BOOT_ID_LEN)
			memset(out, 0, BOOT_ID_LEN);
		fclose(f);
	}
}

/* Sets up the mutex of a file that has none yet, or one from an earlier
 * boot (a holder that went down with the machine left it locked, and no
 * process of this boot can hold it), under the file's flock so that two
 * processes opening it at once do not both. */
static int
turn_page_init(struct turn_page *page)
{
	pthread_mutexattr_t attr;
	char boot_id[BOOT_ID_LEN];
	int rc;

	read_boot_id(boot_id);
	if (page->magic == TURN_MAGIC && memcmp(page->boot_id, boot_id, BOOT_ID_LEN) == 0)
		return 0;
	if (pthread_mutexattr_init(&attr) != 0)
		return -1;
	rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0 ||
	     pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0 ||
	     pthread_mutex_init(&page->lock, &attr) != 0 ? -1 : 0;
	pthread_mutexattr_destroy(&attr);
	if (rc == 0) {
		memcpy(page->boot_id, boot_id, BOOT_ID_LEN);
		page->magic = TURN_MAGIC;
	}
	return rc;
}

struct writer_turn *
writer_turn_open(const char *database)
{
	struct writer_turn *t = NULL;
	struct stat db;
	char path[4096];
	void *map = MAP_FAILED;
	int fd = -1, saved;

	if ((size_t)snprintf(path, sizeof(path), "%s-turn", database) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	/* Made as SQLite makes its -wal and -shm files: the database's mode
	 * and, for root, its owner, so that the other users of the database
	 * can open it too. */
	if (stat(database, &db) != 0)
		return NULL;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, db.st_mode & 0666);
	if (fd < 0)
		goto fail;
	if (geteuid() == 0 && fchown(fd, db.st_uid, db.st_gid) != 0)
		goto fail;
	if (flock(fd, LOCK_EX) != 0)
		goto fail;
	if (ftruncate(fd, sizeof(struct turn_page)) != 0 ||
	    (map = mmap(NULL, sizeof(struct turn_page), PROT_READ | PROT_WRITE, MAP_SHARED,
	                fd, 0)) == MAP_FAILED)
		goto fail;
	if (turn_page_init(map) != 0) {
		errno = EINVAL;
		goto fail;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto fail;
	/* Unlocked by hand: the mapping keeps the file open, and its flock
	 * with it, after the close. */
	flock(fd, LOCK_UN);
	close(fd);
	t->page = map;
	return t;
fail:
	saved = errno;
	if (map != MAP_FAILED)
		munmap(map, sizeof(struct turn_page));
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
	errno = saved;                /* why, for the caller's log line */
	return NULL;
}

int
writer_turn_take(struct writer_turn *t, int timeout_ms)
{
	struct timespec until;
	int rc;

	if (t == NULL)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	rc = pthread_mutex_clocklock(&t->page->lock, CLOCK_MONOTONIC, &until);
	if (rc == EOWNERDEAD)             /* its holder died: the turn is ours */
		rc = pthread_mutex_consistent(&t->page->lock);
	return rc == 0 ? 0 : -1;
}

void
writer_turn_give(struct writer_turn *t)
{
	pthread_mutex_unlock(&t->page->lock);
}

void
writer_turn_close(struct writer_turn *t)
{
	if (t == NULL)
		return;
	munmap(t->page, sizeof(*t->page));
	free(t);
}
