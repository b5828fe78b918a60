/* src/util/fsio.c: small file-system helpers. */
#include "util/fsio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

#define FSIO_CHUNK 8192

int
fsio_mkdirs(const char *dir, mode_t mode)
{
	char *p = xstrdup(dir);
	int rc = 0;

	for (char *s = p + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			rc = -errno;
		*s = c;
		if (c == '\0' || rc < 0)
			break;
	}
	free(p);
	return rc;
}

int
fsio_read_fd(int fd, struct buf *b)
{
	char chunk[FSIO_CHUNK];
	int rc = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0 || (rc = buf_append(b, chunk, (size_t)n)) < 0)
			break;
	}
	return rc;
}

int
fsio_read_file(const char *path, struct buf *b)
{
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fsio_read_fd(fd, b);
	close(fd);
	return rc;
}

int
fsio_read_private(const char *path, struct buf *b, mode_t *mode)
{
	char chunk[FSIO_CHUNK];
	struct stat st;
	int fd, rc = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (mode != NULL)
		*mode = st.st_mode & 07777;
	if ((st.st_mode & 077) != 0) {
		close(fd);
		return -EPERM;
	}
	if (b->data == NULL && st.st_size >= 0 && (size_t)st.st_size < b->limit &&
	    (size_t)st.st_size < ((size_t)-1) - FSIO_CHUNK - 1) {
		b->cap = (size_t)st.st_size + FSIO_CHUNK + 1;
		b->data = xmalloc(b->cap);
		b->data[0] = '\0';
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0 || (rc = buf_append(b, chunk, (size_t)n)) < 0)
			break;
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	return rc;
}

int
fsio_read_secret_line(const char *path, size_t max, char **out, char **why)
{
	struct buf b;
	mode_t mode = 0;
	size_t n;
	int rc;

	*out = NULL;
	*why = NULL;
	buf_init(&b, max);
	rc = fsio_read_private(path, &b, &mode);
	if (rc == -EPERM && (mode & 077) != 0)
		*why = xasprintf("%s can be read by group or others (mode %04o); refusing to use "
		                 "it: chmod 600 %s",
		                 path, (unsigned)(mode & 07777), path);
	else if (rc == -E2BIG)
		*why = xasprintf("%s is larger than %zu bytes", path, max);
	else if (rc < 0)
		*why = xasprintf("%s: %s", path, strerror(-rc));
	n = rc == 0 ? b.len : 0;
	if (n > 0 && b.data[n - 1] == '\n')
		n--;
	if (n > 0 && b.data[n - 1] == '\r')
		n--;
	if (rc == 0 && (n == 0 || memchr(b.data, '\0', n) != NULL ||
	                memchr(b.data, '\n', n) != NULL || memchr(b.data, '\r', n) != NULL)) {
		*why = xasprintf("%s holds no single line (empty, more than one line, or a NUL "
		                 "byte)",
		                 path);
		rc = -EINVAL;
	}
	if (rc == 0)
		*out = xstrndup(b.data, n);
	if (b.data != NULL)
		explicit_bzero(b.data, b.cap);
	buf_free(&b);
	return rc;
}

int
fsio_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsyncs the directory that holds PATH. 0 or -errno. */
static int
fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL   ? xstrdup(".")
	            : slash == path ? xstrdup("/")
	                            : xstrndup(path, (size_t)(slash - path));
	int fd, rc = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int
fsio_commit_tmp(const char *path, unsigned flags)
{
	bool sync = (flags & FSIO_NOSYNC) == 0;
	char *tmp = xasprintf("%s.tmp", path);
	int fd, rc = 0;

	if (sync) {
		fd = open(tmp, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			goto out;
		}
		if (fsync(fd) < 0)
			rc = -errno;
		close(fd);
	}
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		(void)unlink(tmp);
		goto out;
	}
	if (sync)
		rc = fsync_parent(path);
out:
	free(tmp);
	return rc;
}

int
fsio_write_atomic(const char *path, const void *p, size_t n, mode_t mode, unsigned flags)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd, rc;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		free(tmp);
		return rc;
	}
	rc = fsio_write_all(fd, p, n);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		(void)unlink(tmp);
		free(tmp);
		return rc;
	}
	free(tmp);
	return fsio_commit_tmp(path, flags);
}

char *
fsio_exe_sibling(const char *name)
{
	size_t cap = 256;
	char *exe = NULL, *slash, *res = NULL;
	ssize_t n;

	for (;;) {
		exe = xrealloc(exe, cap);
		n = readlink("/proc/self/exe", exe, cap);
		if (n < 0)
			goto out;
		if ((size_t)n < cap)
			break;
		if (cap >= (1u << 20))
			goto out; /* no path is that long */
		cap *= 2;
	}
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) != NULL)
		res = xasprintf("%.*s/%s", (int)(slash - exe), exe, name);
out:
	free(exe);
	return res;
}
