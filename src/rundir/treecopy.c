/* src/rundir/treecopy.c: a private copy of a tree, and its removal (treecopy.h). */
#include "rundir/treecopy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rundir/results.h"
#include "util/xalloc.h"

#define DEPTH_MAX 256

static int copy_dir(int sfd, int dparent, const char *name, mode_t mode, const char *rel,
                    char **failed, int depth);

/* One entry NAME of directory SFD into directory DFD. */
static int
copy_entry(int sfd, int dfd, const char *name, const char *rel, char **failed, int depth)
{
	struct stat st;
	int rc = 0;

	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		int sub = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (sub < 0)
			return -errno;
		return copy_dir(sub, dfd, name, st.st_mode, rel, failed, depth + 1);
	}
	if (S_ISLNK(st.st_mode)) {
		size_t cap = (size_t)st.st_size + 1;
		char *t = xmalloc(cap);
		ssize_t n = readlinkat(sfd, name, t, cap);

		if (n < 0 || (size_t)n >= cap)
			rc = n < 0 ? -errno : -EAGAIN; /* changed under us */
		else if (t[n] = '\0', symlinkat(t, dfd, name) < 0)
			rc = -errno;
		free(t);
		return rc;
	}
	if (S_ISREG(st.st_mode)) {
		int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), out;
		struct timespec ts[2] = { st.st_atim, st.st_mtim };

		if (in < 0)
			return -errno;
		out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		             (st.st_mode & 07777) | S_IWUSR);
		if (out < 0) {
			rc = -errno;
			close(in);
			return rc;
		}
		rc = results_copy_fd(in, out);
		if (rc == 0 && futimens(out, ts) < 0)
			rc = -errno;
		if (close(out) < 0 && rc == 0)
			rc = -errno;
		close(in);
	}
	return rc;
}

/* The directory SFD (consumed) as NAME in directory DPARENT, its mode MODE plus owner
 * write. */
static int
copy_dir(int sfd, int dparent, const char *name, mode_t mode, const char *rel, char **failed,
         int depth)
{
	DIR *d;
	struct dirent *e;
	int dfd, rc = 0;

	if (depth > DEPTH_MAX) {
		close(sfd);
		return -ELOOP;
	}
	if (mkdirat(dparent, name, (mode & 07777) | S_IRWXU) < 0 ||
	    (dfd = openat(dparent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		rc = -errno;
		close(sfd);
		return rc;
	}
	if ((d = fdopendir(sfd)) == NULL) {
		rc = -errno;
		close(sfd);
		close(dfd);
		return rc;
	}
	errno = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char *p;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		p = *rel != '\0' ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
		rc = copy_entry(dirfd(d), dfd, e->d_name, p, failed, depth);
		if (rc < 0 && failed != NULL && *failed == NULL)
			*failed = xstrdup(p);
		free(p);
		errno = 0;
	}
	if (rc == 0 && errno != 0)
		rc = -errno;
	closedir(d);
	if (rc == 0 && fchmod(dfd, (mode & 07777) | S_IRWXU) < 0)
		rc = -errno;
	close(dfd);
	return rc;
}

int
treecopy(const char *from, const char *to, char **failed)
{
	int sfd = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;
	struct stat st;

	if (failed != NULL)
		*failed = NULL;
	if (sfd < 0 || fstat(sfd, &st) < 0) {
		rc = -errno;
		if (sfd >= 0)
			close(sfd);
		return rc;
	}
	/* the parent by its path, the tree below by its fds */
	rc = copy_dir(sfd, AT_FDCWD, to, st.st_mode, "", failed, 0);
	return rc;
}

static int
remove_in(int dfd, int depth)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (depth > DEPTH_MAX) {
		close(dfd);
		return -ELOOP;
	}
	(void)fchmod(dfd, S_IRWXU);
	if ((d = fdopendir(dfd)) == NULL) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int r = sub < 0 ? -errno : remove_in(sub, depth + 1);

			if (r == 0 && unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0)
				r = -errno;
			if (r < 0 && rc == 0)
				rc = r;
		} else if (unlinkat(dirfd(d), e->d_name, 0) < 0 && rc == 0) {
			rc = -errno;
		}
	}
	closedir(d);
	return rc;
}

int
treecopy_remove(const char *path)
{
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), rc;

	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = remove_in(dfd, 0);
	if (rmdir(path) < 0 && rc == 0)
		rc = errno == ENOENT ? 0 : -errno;
	return rc;
}
