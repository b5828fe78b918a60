/* src/rundir/results.c: listing and copying a run's results (results.h). */
#include "rundir/results.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

#define COPY_BUF (64u << 10)

struct list {
	struct results_file *v;
	size_t n, cap;
};

/* Adds the regular files under directory DFD (consumed) to L, their paths under PREFIX. */
static int
walk(int dfd, const char *prefix, struct list *l, int depth)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (depth > 64) {
		close(dfd);
		return -ELOOP;
	}
	if ((d = fdopendir(dfd)) == NULL) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	errno = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		struct stat st;
		char *p;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				rc = -errno;
			continue;
		}
		p = *prefix != '\0' ? xasprintf("%s/%s", prefix, e->d_name) : xstrdup(e->d_name);
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			rc = sub < 0 ? -errno : walk(sub, p, l, depth + 1);
			free(p);
		} else if (S_ISREG(st.st_mode)) {
			if (l->n == l->cap) {
				l->cap = l->cap != 0 ? l->cap * 2 : 8;
				l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
			}
			l->v[l->n].path = p;
			l->v[l->n++].size = (uint64_t)st.st_size;
		} else {
			free(p);
		}
		errno = 0;
	}
	if (rc == 0 && errno != 0)
		rc = -errno;
	closedir(d);
	return rc;
}

static int
by_path(const void *a, const void *b)
{
	return strcmp(((const struct results_file *)a)->path,
	              ((const struct results_file *)b)->path);
}

int
results_list(const char *run_dir, struct results_file **out, size_t *n)
{
	char *dir = xasprintf("%s/%s", run_dir, RUNDIR_RESULTS);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct list l = { 0 };
	int rc;

	free(dir);
	*out = NULL;
	*n = 0;
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if ((rc = walk(dfd, "", &l, 0)) < 0) {
		results_files_free(l.v, l.n);
		return rc;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), by_path);
	*out = l.v;
	*n = l.n;
	return 0;
}

void
results_files_free(struct results_file *f, size_t n)
{
	for (size_t i = 0; f != NULL && i < n; i++)
		free(f[i].path);
	free(f);
}

int
results_copy_fd(int in, int out)
{
	char *buf = NULL;
	bool plain = false;
	int rc = 0;

	for (;;) {
		ssize_t r;

		if (!plain) {
			r = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
			if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			              errno == EOPNOTSUPP || errno == EPERM)) {
				plain = true;
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = -errno;
				break;
			}
			if (r == 0)
				break;
			continue;
		}
		if (buf == NULL)
			buf = xmalloc(COPY_BUF);
		r = read(in, buf, COPY_BUF);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0)
			break;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = -errno;
				goto done;
			}
			off += w;
		}
	}
done:
	free(buf);
	return rc;
}

/* Makes the directories of relative PATH under directory TO. */
static int
make_parents(const char *to, const char *path)
{
	char *p = xasprintf("%s/%s", to, path);
	size_t skip = strlen(to) + 1;
	int rc = 0;

	for (char *s = p + skip; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		*s = '/';
		if (rc < 0)
			break;
	}
	free(p);
	return rc;
}

static int
copy_one(const char *from, const char *to, const char *path)
{
	char *src = xasprintf("%s/%s", from, path), *dst = xasprintf("%s/%s", to, path);
	int in = -1, out = -1, rc = 0;
	struct stat st;

	if ((rc = make_parents(to, path)) < 0)
		goto done;
	if ((in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(in, &st) < 0) {
		rc = -errno;
		goto done;
	}
	if ((out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	                st.st_mode & 0777)) < 0) {
		rc = -errno;
		goto done;
	}
	rc = results_copy_fd(in, out);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	out = -1;
done:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(src);
	free(dst);
	return rc;
}

int
results_copy(const char *run_dir, const struct results_file *f, size_t n, const char *to,
             char **failed)
{
	char *from = xasprintf("%s/%s", run_dir, RUNDIR_RESULTS);
	int rc = 0;

	if (failed != NULL)
		*failed = NULL;
	if (mkdir(to, 0755) < 0 && errno != EEXIST)
		rc = -errno;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if ((rc = copy_one(from, to, f[i].path)) < 0 && failed != NULL)
			*failed = xstrdup(f[i].path);
	if (rc < 0 && failed != NULL && *failed == NULL)
		*failed = xstrdup(to);
	free(from);
	return rc;
}
