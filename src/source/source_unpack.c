/* src/source/source_unpack.c: the agent's side of a remote run's code (archive.h): the tar
 * archive of exactly the run's commit, unpacked once into the read-only cache
 * STATE/sources/<commit> with the host's tar, without git, and pruned as the worktrees are. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/gitrun.h"
#include "source/source.h"
#include "source/source_int.h"
#include "util/diag.h"
#include "util/xalloc.h"

/* The tar program: the first executable "tar" on our PATH, else /bin/tar or /usr/bin/tar (an
 * ssh session's PATH may be bare). Caller frees; NULL when there is none. */
static char *
unpack_find_tar(void)
{
	static const char *const fallback[] = { "/bin/tar", "/usr/bin/tar" };
	const char *path = getenv("PATH");

	while (path != NULL && *path != '\0') {
		size_t n = strcspn(path, ":");

		if (n > 0 && path[0] == '/') { /* a relative entry means nothing to us */
			char *p = xasprintf("%.*s/tar", (int)n, path);

			if (access(p, X_OK) == 0 && !source_is_dir(p))
				return p;
			free(p);
		}
		path += n;
		if (*path == ':')
			path++;
	}
	for (size_t i = 0; i < EPH_ARRAY_LEN(fallback); i++)
		if (access(fallback[i], X_OK) == 0)
			return xstrdup(fallback[i]);
	return NULL;
}

/* Why TAR failed, for a person: its stderr's lines (gitrun_why), or how it ended. Caller
 * frees. */
static char *
unpack_why(const struct gitrun_result *r)
{
	if (r->timed_out)
		return xasprintf("tar timed out after %d s", SOURCE_LOCAL_MS / 1000);
	if (r->err != NULL && r->err[0] != '\0')
		return gitrun_why(r, SOURCE_LOCAL_MS);
	if (r->signal > 0)
		return xasprintf("tar was killed by signal %d", r->signal);
	return xasprintf("tar exited with status %d", r->status);
}

struct unpack_arg {
	const char *archive, *commit;
};

static bool
unpack_ready(const char *path, void *arg)
{
	(void)arg;
	return source_is_dir(path);
}

/* Unpacks the archive at PATH (aside in PATH.tmp, under the build lock). 0, or -errno with D.
 */
static int
unpack_build(const char *path, void *varg, struct diag *d)
{
	const struct unpack_arg *a = varg;
	char *tmp = xasprintf("%s.tmp", path), *tar = NULL, *why = NULL;
	struct gitrun_result r = { 0 };
	bool made = false;
	int fd, rc;

	/* the archive first: its own error says more than tar's would */
	if ((fd = open(a->archive, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		source_err(d, "cannot read the archive %s: %s", a->archive, strerror(-rc));
		goto out;
	}
	close(fd);
	if ((tar = unpack_find_tar()) == NULL) {
		rc = -ENOENT;
		source_err(d, "cannot unpack %s: no tar program (on PATH, /bin/tar, /usr/bin/tar)",
		           a->archive);
		goto out;
	}
	/* a leftover of a crash; we hold the build lock, so no one else is unpacking there */
	if ((rc = source_rmtree(tmp)) < 0) {
		source_err(d, "cannot remove %s: %s", tmp, strerror(-rc));
		goto out;
	}
	if (mkdir(tmp, 0755) < 0) {
		rc = -errno;
		source_err(d, "cannot create %s: %s", tmp, strerror(-rc));
		goto out;
	}
	made = true;
	{
		const char *args[] = { "-xf", a->archive, "-C", tmp, NULL };

		if ((rc = gitrun_prog(tar, NULL, args, SOURCE_LOCAL_MS, &r)) < 0) {
			source_err(d, "cannot run %s: %s", tar, strerror(-rc));
			goto out;
		}
	}
	if (!gitrun_ok(&r)) {
		rc = -EIO;
		why = unpack_why(&r);
		source_err(d, "cannot unpack %s (commit %s): %s", a->archive, a->commit, why);
		goto out;
	}
	if ((rc = source_make_readonly(tmp)) < 0) {
		source_err(d, "cannot make %s read-only: %s", tmp, strerror(-rc));
		goto out;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		/* someone unpacked the same commit meanwhile without our lock (another state
		 * directory's convention cannot reach here; a copy by hand can): theirs is as
		 * good as ours, so it is used and ours goes */
		if ((rc == -EEXIST || rc == -ENOTEMPTY) && source_is_dir(path)) {
			rc = 0;
			goto out;
		}
		source_err(d, "cannot rename %s: %s", tmp, strerror(-rc));
		goto out;
	}
	made = false;
	rc = 0;
out:
	/* a leftover the removal cannot take is met again (and reported) by the next build */
	if (made && source_rmtree(tmp) < 0 && rc < 0)
		source_err(d, "cannot remove %s either", tmp);
	gitrun_result_free(&r);
	free(why);
	free(tar);
	free(tmp);
	return rc;
}

int
source_unpack(const char *state_dir, const char *archive, const char *commit, int keep,
              struct source_worktree *wt, struct diag *d)
{
	struct unpack_arg a = { archive, commit };
	char *dir;
	int rc;

	memset(wt, 0, sizeof(*wt));
	wt->hold_fd = -1;
	if (!source_is_commit_id(commit)) {
		source_err(d, "\"%s\" is not a commit id", commit);
		return -EINVAL;
	}
	dir = xasprintf("%s/%s", state_dir, SOURCE_UNPACK_DIR);
	rc = source_cache_get(dir, commit, 0700, unpack_ready, unpack_build, &a, -1, 0,
	                      &wt->hold_fd, &wt->built, d);
	if (rc == 0) {
		if (keep > 0)
			source_prune(dir, keep);
		wt->path = xasprintf("%s/%s", dir, commit);
	}
	free(dir);
	return rc;
}
