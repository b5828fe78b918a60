/* src/source/source_worktree.c: the worktree cache, STATE/src/<commit>: read-only checkouts
 * of one commit each, built once and pruned least recently used first. */
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

static int
source_ro_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_SL || S_ISLNK(st->st_mode))
		return 0;
	if ((st->st_mode & 0222) != 0 && chmod(path, st->st_mode & 07555) < 0)
		return errno;
	return 0;
}

struct source_lru {
	char *name;
	struct timespec used;
};

static int
source_lru_cmp(const void *a, const void *b)
{
	const struct source_lru *x = a, *y = b;

	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec > y->used.tv_sec ? -1 : 1;
	if (x->used.tv_nsec != y->used.tv_nsec)
		return x->used.tv_nsec > y->used.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

int
source_make_readonly(const char *path)
{
	int rc = nftw(path, source_ro_cb, 32, FTW_PHYS);

	return rc == 0 ? 0 : rc > 0 ? -rc : -errno;
}

void
source_prune(const char *srcdir, int keep)
{
	struct source_lru *v = NULL;
	size_t n = 0;
	DIR *dir = opendir(srcdir);
	struct dirent *e;

	if (dir == NULL)
		return;
	while ((e = readdir(dir)) != NULL) {
		char *p, *lockp;
		struct stat st;

		if (!source_is_commit_id(e->d_name))
			continue;
		p = xasprintf("%s/%s", srcdir, e->d_name);
		lockp = xasprintf("%s.lock", p);
		if (stat(lockp, &st) == 0 || stat(p, &st) == 0) {
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n].name = xstrdup(e->d_name);
			v[n].used = st.st_mtim;
			n++;
		}
		free(p);
		free(lockp);
	}
	closedir(dir);
	if (n > 0)
		qsort(v, n, sizeof(*v), source_lru_cmp);
	for (size_t i = 0; i < n; i++) {
		int rc =
		        i >= (size_t)keep ? source_cache_remove(srcdir, v[i].name, false, NULL) : 0;

		/* One held by a live run (-EBUSY) or gone (-ENOENT) is skipped; another error
		 * (the file system refuses) would meet the rest too: they wait for `eph gc`. */
		if (rc < 0 && rc != -EBUSY && rc != -ENOENT)
			keep = INT_MAX;
		free(v[i].name);
	}
	free(v);
}

/* Builds the checkout of COMMIT at PATH (aside in PATH.tmp). 0, or -errno with D. The mirror
 * is held (LOCK_SH on its lock) meanwhile, so that `eph gc` cannot remove it during the clone;
 * once built, the worktree's alternates name the mirror, and gc keeps a mirror that a
 * worktree borrows from (source_mirror_remove). */
static int
source_build(const char *mirror, const char *commit, const char *path, struct diag *d)
{
	char *tmp = xasprintf("%s.tmp", path), *gm = xasprintf("%s/.gitmodules", tmp);
	char *why = NULL, *origin = NULL, *mlock = xasprintf("%s.lock", mirror);
	int rc, mfd;

	if ((mfd = source_cache_lock(mlock, true)) < 0) {
		rc = mfd;
		source_err(d, "cannot lock %s: %s", mlock, strerror(-rc));
		goto out;
	}
	if ((rc = source_rmtree(tmp)) < 0) {
		source_err(d, "cannot remove %s: %s", tmp, strerror(-rc));
		goto out;
	}
	{
		const char *a[] = { "clone", "--shared", "--no-checkout", "--quiet", "--", mirror,
			            tmp,     NULL };

		if ((rc = source_git(a, SOURCE_LOCAL_MS, NULL, &why)) < 0) {
			source_err(d, "cannot check out %s: %s", commit, why);
			goto out;
		}
	}
	{
		const char *a[] = { "-C",       tmp,       "-c",       "advice.detachedHead=false",
			            "checkout", "--quiet", "--detach", commit,
			            NULL };

		if ((rc = source_git(a, SOURCE_LOCAL_MS, NULL, &why)) < 0) {
			source_err(d, "cannot check out %s from %s: %s", commit, mirror, why);
			goto out;
		}
	}
	if (source_exists(gm)) {
		/* Relative submodule URLs (../lib.git) are relative to the real remote, not to
		 * the mirror the worktree was cloned from. */
		const char *g[] = { "--git-dir",         mirror, "config", "--get",
			            "remote.origin.url", NULL };

		if (source_git(g, SOURCE_LOCAL_MS, &origin, NULL) == 0) {
			const char *a[] = {
				"-C", tmp, "config", "remote.origin.url", origin, NULL
			};

			(void)source_git(a, SOURCE_LOCAL_MS, NULL, NULL);
		}
		{
			/* The repository is the user's own code, which we are about to run:
			 * its local submodules are as trusted as it is. */
			const char *a[] = { "-C",        tmp,
				            "-c",        "protocol.file.allow=always",
				            "submodule", "update",
				            "--init",    "--recursive",
				            "--quiet",   NULL };

			if ((rc = source_git(a, SOURCE_SUBMOD_MS, NULL, &why)) < 0) {
				source_err(d, "cannot check out the submodules of %s: %s", commit,
				           why);
				goto out;
			}
		}
		{
			/* Back to the mirror: a URL may carry credentials. */
			const char *a[] = {
				"-C", tmp, "config", "remote.origin.url", mirror, NULL
			};

			(void)source_git(a, SOURCE_LOCAL_MS, NULL, NULL);
		}
	}
	if ((rc = source_make_readonly(tmp)) < 0) {
		source_err(d, "cannot make %s read-only: %s", tmp, strerror(-rc));
		goto out;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		source_err(d, "cannot rename %s: %s", tmp, strerror(-rc));
		goto out;
	}
out:
	/* a leftover the removal cannot take is met again (and reported) by the next build */
	if (rc < 0 && mfd >= 0 && source_rmtree(tmp) < 0)
		source_err(d, "cannot remove %s either", tmp);
	if (mfd >= 0)
		close(mfd);
	free(tmp);
	free(gm);
	free(why);
	free(origin);
	free(mlock);
	return rc;
}

static bool
source_checkout_ready(const char *path, void *arg)
{
	(void)arg;
	return source_is_dir(path);
}

struct source_checkout_arg {
	const char *mirror, *commit;
};

static int
source_checkout_build(const char *path, void *arg, struct diag *d)
{
	const struct source_checkout_arg *a = arg;

	return source_build(a->mirror, a->commit, path, d);
}

int
source_checkout(const char *state_dir, const char *mirror, const char *commit, int keep,
                struct source_worktree *wt, struct diag *d)
{
	struct source_checkout_arg a = { mirror, commit };
	char *srcdir;
	int rc;

	memset(wt, 0, sizeof(*wt));
	wt->hold_fd = -1;
	if (!source_is_commit_id(commit)) {
		source_err(d, "\"%s\" is not a commit id", commit);
		return -EINVAL;
	}
	srcdir = xasprintf("%s/src", state_dir);
	rc = source_cache_get(srcdir, commit, 0700, source_checkout_ready, source_checkout_build,
	                      &a, -1, 0, &wt->hold_fd, &wt->built, d);
	if (rc == 0) {
		if (keep > 0)
			source_prune(srcdir, keep);
		wt->path = xasprintf("%s/%s", srcdir, commit);
	}
	free(srcdir);
	return rc;
}

void
source_worktree_release(struct source_worktree *wt)
{
	if (wt == NULL)
		return;
	if (wt->hold_fd >= 0)
		close(wt->hold_fd);
	wt->hold_fd = -1;
	free(wt->path);
	wt->path = NULL;
}
