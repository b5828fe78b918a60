/* src/source/archive.c: the commit's tar archive for a remote run, cached by commit
 * (archive.h). */
#include "source/archive.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source/gitrun.h"
#include "source/source.h"
#include "source/source_int.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

static bool
archive_ready(const char *path, void *arg)
{
	struct stat st;

	(void)arg;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

struct archive_build {
	const char *mirror;
	const char *commit;
	int64_t timeout_ms;
};

/* Writes `git archive` of the commit to PATH.tmp, then puts it in place (fsio_commit_tmp). */
static int
archive_build_cb(const char *path, void *arg, struct diag *d)
{
	const struct archive_build *b = arg;
	char *tmp = xasprintf("%s.tmp", path);
	char *gitdir = xasprintf("--git-dir=%s", b->mirror);
	char *output = xasprintf("--output=%s", tmp);
	char *rev = xasprintf("%s^{commit}", b->commit);
	/* --git-dir: the mirror is bare; --output: git writes the file itself, so an archive
	 * of any size never passes through our memory */
	const char *args[] = { gitdir, "archive", "--format=tar", output, rev, NULL };
	struct gitrun_result r;
	int rc;

	(void)unlink(tmp); /* a crashed build's leftover */
	rc = gitrun(args, b->timeout_ms, &r);
	if (rc < 0) {
		source_err(d, "cannot run git: %s", strerror(-rc));
		goto out;
	}
	if (!gitrun_ok(&r)) {
		char *why = gitrun_why(&r, b->timeout_ms);

		source_err(d, "cannot archive commit %s of %s: %s", b->commit, b->mirror, why);
		free(why);
		rc = r.timed_out ? -ETIMEDOUT : -EIO;
		gitrun_result_free(&r);
		goto out;
	}
	gitrun_result_free(&r);
	if ((rc = fsio_commit_tmp(path, 0)) < 0)
		source_err(d, "cannot write %s: %s", path, strerror(-rc));
out:
	if (rc < 0)
		(void)unlink(tmp);
	free(tmp);
	free(gitdir);
	free(output);
	free(rev);
	return rc;
}

int
archive_get(const char *state_dir, const char *mirror, const char *commit, int64_t timeout_ms,
            struct archive *a, struct diag *d)
{
	struct archive_build b = { mirror, commit, timeout_ms > 0 ? timeout_ms : ARCHIVE_TIMEOUT };
	char *dir = NULL, *key = NULL;
	int rc;

	memset(a, 0, sizeof(*a));
	a->hold_fd = -1;
	if (!source_is_commit_id(commit)) {
		source_err(d, "cannot archive \"%s\": not a full commit id", commit);
		return -EINVAL;
	}
	dir = xasprintf("%s/%s", state_dir, ARCHIVE_DIR);
	key = xasprintf("%s%s", commit, ARCHIVE_SUFFIX);
	rc = source_cache_get(dir, key, 0700, archive_ready, archive_build_cb, &b, -1, 0,
	                      &a->hold_fd, &a->built, d);
	if (rc == 0)
		a->path = xasprintf("%s/%s", dir, key);
	free(dir);
	free(key);
	return rc;
}

void
archive_release(struct archive *a)
{
	if (a == NULL)
		return;
	if (a->hold_fd >= 0)
		close(a->hold_fd);
	free(a->path);
	memset(a, 0, sizeof(*a));
	a->hold_fd = -1;
}
