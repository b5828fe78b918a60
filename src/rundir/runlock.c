/* src/rundir/runlock.c: a run's lock, DIR/agent.lock (see runlock.h). */
#include "rundir/runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rundir/rundir.h"
#include "util/xalloc.h"

#define RUNLOCK_MARK "exec\n"

static char *
runlock_path(const char *dir)
{
	return xasprintf("%s/%s", dir, RUNLOCK_FILE);
}

/* Whether the held lock FD carries the exec mark. */
static bool
runlock_marked(int fd)
{
	char text[sizeof(RUNLOCK_MARK)] = { 0 };

	return pread(fd, text, sizeof(text) - 1, 0) == (ssize_t)(sizeof(text) - 1) &&
	       memcmp(text, RUNLOCK_MARK, sizeof(text) - 1) == 0;
}

/* With the lock FD of DIR held: -EALREADY when the command started or a result is there. */
static int
runlock_check(const char *dir, int fd)
{
	char *res = xasprintf("%s/%s", dir, RUNDIR_RESULT);
	bool done = access(res, F_OK) == 0;

	free(res);
	return done || runlock_marked(fd) ? -EALREADY : 0;
}

/* Takes the lock of the open FD without waiting, then checks it: 0, -EBUSY, -EALREADY. */
static int
runlock_hold(const char *dir, int fd)
{
	int rc;

	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	rc = runlock_check(dir, fd);
	if (rc < 0)
		(void)flock(fd, LOCK_UN);
	return rc;
}

int
runlock_take(const char *dir, int *fd)
{
	char *path;
	int rc;

	*fd = -1;
	if (*dir == '\0')
		return -EINVAL; /* not "/agent.lock" */
	path = runlock_path(dir);
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	rc = *fd < 0 ? -errno : 0;
	free(path);
	if (rc == 0 && (rc = runlock_hold(dir, *fd)) < 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

int
runlock_adopt(const char *dir, int inherited, int *fd)
{
	char *path = runlock_path(dir);
	struct stat a, b;
	bool ours = fstat(inherited, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	            a.st_ino == b.st_ino;
	int rc;

	free(path);
	if (!ours)
		return runlock_take(dir, fd);
	if (fcntl(inherited, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	/* flock on the description we share with the starter: ours already, so it succeeds */
	rc = runlock_hold(dir, inherited);
	if (rc < 0)
		return rc;
	*fd = inherited;
	return 0;
}

int
runlock_mark_exec(int fd)
{
	ssize_t w = pwrite(fd, RUNLOCK_MARK, sizeof(RUNLOCK_MARK) - 1, 0);

	if (w != (ssize_t)(sizeof(RUNLOCK_MARK) - 1))
		return w < 0 ? -errno : -EIO;
	return fdatasync(fd) < 0 ? -errno : 0;
}

int
runlock_inspect(const char *dir, enum runlock_state *st)
{
	char *path = runlock_path(dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	free(path);
	if (fd < 0) {
		*st = RUNLOCK_NONE;
		return errno == ENOENT ? 0 : -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		*st = RUNLOCK_HELD;
		rc = errno == EWOULDBLOCK ? 0 : -errno;
	} else {
		*st = runlock_marked(fd) ? RUNLOCK_EXEC : RUNLOCK_PREPARED;
	}
	close(fd);
	return rc;
}
