/* src/source/source_cache.c: cache entries under the state directory (mirrors, worktrees,
 * venvs): shared and build locks, get-or-build, sizes and removal for eph gc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "source/gitrun.h"
#include "source/source.h"
#include "source/source_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

int
source_cache_lock(const char *lock_path, bool shared)
{
	for (int i = 0; i < SOURCE_MAX_RETRIES; i++) {
		struct stat a, b;
		int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0)
			return -errno;
		while (flock(fd, shared ? LOCK_SH : LOCK_EX) < 0) {
			/* a stop (gitrun_abort) interrupts the wait for another's fetch too */
			if (errno != EINTR || gitrun_is_aborted()) {
				int rc = errno == EINTR ? -ECANCELED : -errno;

				close(fd);
				return rc;
			}
		}
		/* Whoever removes an entry unlinks its lock file while holding LOCK_EX: a lock
		 * on an unlinked file protects nothing, so take the new file's. */
		if (fstat(fd, &a) == 0 && stat(lock_path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
	return -EAGAIN;
}

void
source_cache_touch(int fd)
{
	/* best effort: when it fails, only the LRU order (prune, gc --venv-days) suffers */
	(void)futimens(fd, NULL);
}

int
source_cache_build_lock(const char *build_path, int cancel_fd, int64_t deadline_ms)
{
	int fd = open(build_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), rc;

	if (fd < 0)
		return -errno;
	if (cancel_fd < 0 && deadline_ms <= 0) {
		while (flock(fd, LOCK_EX) < 0) {
			/* a stop (gitrun_abort) interrupts the wait for another's build too */
			if (errno != EINTR || gitrun_is_aborted()) {
				rc = errno == EINTR ? -ECANCELED : -errno;
				close(fd);
				return rc;
			}
		}
		return fd;
	}
	/* flock cannot be interrupted by an fd: try, then wait a little on CANCEL_FD */
	for (;;) {
		struct pollfd pf = { cancel_fd, POLLIN, 0 };
		int wait_ms = SOURCE_BUILD_POLL_MS;

		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (deadline_ms > 0) {
			int64_t left = deadline_ms - clock_mono_ms();

			if (left <= 0) {
				rc = -ETIMEDOUT;
				break;
			}
			if (left < wait_ms)
				wait_ms = (int)left;
		}
		if (poll(&pf, cancel_fd >= 0 ? 1 : 0, wait_ms) < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if ((cancel_fd >= 0 && (pf.revents & POLLIN) != 0) || gitrun_is_aborted()) {
			rc = -ECANCELED;
			break;
		}
	}
	close(fd);
	return rc;
}

int
source_cache_get(const char *dir, const char *key, mode_t dir_mode,
                 bool (*ready)(const char *path, void *arg),
                 int (*build)(const char *path, void *arg, struct diag *d), void *arg,
                 int cancel_fd, int64_t deadline_ms, int *hold_fd, bool *built, struct diag *d)
{
	char *path = xasprintf("%s/%s", dir, key);
	char *lockp = xasprintf("%s.lock", path);
	char *buildp = xasprintf("%s.build", path);
	int fd = -1, bfd = -1, rc;

	*hold_fd = -1;
	*built = false;
	if ((rc = fsio_mkdirs(dir, dir_mode)) < 0) {
		source_err(d, "cannot create %s: %s", dir, strerror(-rc));
		goto out;
	}
	/* The hold: LOCK_SH, kept from here on, so no one removes the entry meanwhile. */
	if ((fd = source_cache_lock(lockp, true)) < 0) {
		rc = fd;
		source_err(d, "cannot lock %s: %s", lockp, strerror(-rc));
		goto out;
	}
	if (!ready(path, arg)) {
		/* Missing: build it under the build lock, after looking again (a concurrent
		 * caller may have built it while we waited for its build, never its run). */
		if ((bfd = source_cache_build_lock(buildp, cancel_fd, deadline_ms)) < 0) {
			rc = bfd;
			if (rc != -ECANCELED && rc != -ETIMEDOUT)
				source_err(d, "cannot lock %s: %s", buildp, strerror(-rc));
			goto out;
		}
		if (!ready(path, arg)) {
			if ((rc = build(path, arg, d)) < 0)
				goto out;
			*built = true;
		}
		close(bfd);
		bfd = -1;
	}
	source_cache_touch(fd);
	*hold_fd = fd;
	fd = -1;
	rc = 0;
out:
	if (bfd >= 0)
		close(bfd);
	if (fd >= 0)
		close(fd);
	free(path);
	free(lockp);
	free(buildp);
	return rc;
}

static uint64_t source_du_total;

static int
source_du_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)flag;
	(void)ftw;
	source_du_total += (uint64_t)st->st_blocks * 512;
	return 0;
}

uint64_t
source_du(const char *path)
{
	source_du_total = 0;
	/* what cannot be read counts as nothing: a missing PATH is 0 bytes */
	(void)nftw(path, source_du_cb, 32, FTW_PHYS);
	return source_du_total;
}

/* Removes NAME in DIRFD, recursively. 0 or -errno. */
static int
source_rm_at(int at, const char *name)
{
	struct stat st;
	DIR *dir;
	struct dirent *e;
	int fd, rc = 0;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(at, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if ((st.st_mode & 0700) != 0700 && fchmodat(at, name, 0700, 0) < 0)
		return -errno;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (dir == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((e = readdir(dir)) != NULL) {
		int r;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		r = source_rm_at(dirfd(dir), e->d_name);
		if (r < 0 && rc == 0)
			rc = r;
	}
	closedir(dir);
	if (rc == 0 && unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

int
source_rmtree(const char *path)
{
	return source_rm_at(AT_FDCWD, path);
}

/* Tells, under the entry's LOCK_EX, whether something outside the lock still needs it: a
 * negative value refuses the removal with that value. */
typedef int (*source_refuse_fn)(const char *path, void *arg);

static int
source_cache_remove_unless(const char *dir, const char *key, bool dry_run, uint64_t *freed,
                           source_refuse_fn refuse, void *arg)
{
	char *path = xasprintf("%s/%s", dir, key), *tmp = xasprintf("%s.tmp", path);
	char *lockp = xasprintf("%s.lock", path), *buildp = xasprintf("%s.build", path);
	struct stat a, b;
	int fd = -1, rc = 0;

	if (!source_exists(path) && !source_exists(tmp)) {
		rc = -ENOENT;
		goto out;
	}
	fd = open(lockp, O_RDWR | (dry_run ? 0 : O_CREAT) | O_CLOEXEC, 0600);
	if (fd < 0 && !(dry_run && errno == ENOENT)) {
		rc = -errno;
		goto out;
	}
	if (fd >= 0) {
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
			goto out;
		}
		if (fstat(fd, &a) < 0 || stat(lockp, &b) < 0 || a.st_ino != b.st_ino) {
			rc = -EBUSY; /* removed and recreated under us: someone is at work */
			goto out;
		}
	}
	if (refuse != NULL && (rc = refuse(path, arg)) < 0)
		goto out;
	if (freed != NULL)
		*freed += source_du(path) + source_du(tmp);
	if (!dry_run) {
		if ((rc = source_rmtree(tmp)) < 0 || (rc = source_rmtree(path)) < 0)
			goto out;
		/* No one holds LOCK_SH on the hold lock, and the build lock is only taken under
		 * it: no one is building either. An unlink that fails leaves an empty file. */
		(void)unlink(buildp);
		(void)unlink(lockp);
	}
out:
	if (fd >= 0)
		close(fd);
	free(path);
	free(tmp);
	free(lockp);
	free(buildp);
	return rc;
}

int
source_cache_remove(const char *dir, const char *key, bool dry_run, uint64_t *freed)
{
	return source_cache_remove_unless(dir, key, dry_run, freed, NULL, NULL);
}

/* true when the worktree (or unfinished worktree) WT borrows objects from the directory of
 * OBJ (a stat of MIRROR/objects): a line of WT/.git/objects/info/alternates names it. */
static bool
source_borrows(const char *wt, const struct stat *obj)
{
	char *p = xasprintf("%s/.git/objects/info/alternates", wt);
	FILE *f = fopen(p, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool yes = false;

	free(p);
	if (f == NULL)
		return false;
	while (!yes && (n = getline(&line, &cap, f)) > 0) {
		struct stat st;

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		yes = stat(line, &st) == 0 && st.st_dev == obj->st_dev && st.st_ino == obj->st_ino;
	}
	free(line);
	fclose(f);
	return yes;
}

struct source_mirror_check {
	const char *srcdir;
	bool dry_run; /* count only the worktrees a live run holds: gc removes the others first */
};

/* true when someone holds LOCK_PATH (LOCK_SH or LOCK_EX). */
static bool
source_is_held(const char *lock_path)
{
	int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
	bool held;

	if (fd < 0)
		return false;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0;
	close(fd);
	return held;
}

/* source_refuse_fn for a mirror: -ENOTEMPTY while a worktree of STATE/src borrows from it. */
static int
source_mirror_refuse(const char *mirror, void *arg)
{
	const struct source_mirror_check *c = arg;
	const char *srcdir = c->srcdir;
	char *objects = xasprintf("%s/objects", mirror);
	struct stat obj;
	DIR *dir;
	struct dirent *e;
	int rc = 0;

	if (stat(objects, &obj) < 0) {
		free(objects);
		return 0; /* nothing to borrow from */
	}
	free(objects);
	if ((dir = opendir(srcdir)) == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (rc == 0 && (e = readdir(dir)) != NULL) {
		char *wt;

		if (e->d_name[0] == '.' || strstr(e->d_name, ".lock") != NULL ||
		    strstr(e->d_name, ".build") != NULL)
			continue;
		wt = xasprintf("%s/%s", srcdir, e->d_name);
		if (source_borrows(wt, &obj)) {
			size_t len = strlen(wt);
			char *lockp = len > 4 && strcmp(wt + len - 4, ".tmp") == 0
			                      ? xasprintf("%.*s.lock", (int)(len - 4), wt)
			                      : xasprintf("%s.lock", wt);

			if (!c->dry_run || source_is_held(lockp))
				rc = -ENOTEMPTY;
			free(lockp);
		}
		free(wt);
	}
	closedir(dir);
	return rc;
}

int
source_mirror_remove(const char *state_dir, const char *name, bool dry_run, uint64_t *freed)
{
	char *mdir = xasprintf("%s/mirrors", state_dir), *srcdir = xasprintf("%s/src", state_dir);
	struct source_mirror_check c = { srcdir, dry_run };
	int rc = source_cache_remove_unless(mdir, name, dry_run, freed, source_mirror_refuse, &c);

	free(mdir);
	free(srcdir);
	return rc;
}
