/* src/source/archive.h: the code a remote run carries: a tar archive of exactly the run's
 * commit, made on the scheduler from its mirror (`git archive`), so that a worker never holds
 * repository credentials and never talks to the git host. Groundwork for the remote executors
 * (issue 12): exec_ssh.c ships the file this gives and the agent's side unpacks it.
 *
 * The archives are a cache keyed by commit, under the convention of source.h:
 *   STATE/archives/<commit>.tar        the archive, written aside (<commit>.tar.tmp), fsynced
 *                                      and renamed into place: never seen half-written;
 *   STATE/archives/<commit>.tar.lock   its hold lock (LOCK_SH while a run ships it; mtime =
 *                                      last use), which `eph gc` takes LOCK_EX|LOCK_NB to
 *                                      remove it;
 *   STATE/archives/<commit>.tar.build  its build lock: two runs wanting a missing archive make
 *                                      it once, the second waits for that build only.
 * What it holds is `git archive --format=tar <commit>` of the mirror, byte for byte: every
 * file of the commit's tree, no .git, no submodule content (git archive leaves submodules
 * out), and what .gitattributes' export-ignore and export-subst say (git archive applies
 * them; a local checkout does not). Its global pax header carries the commit id
 * (`git get-tar-commit-id` reads it back). */
#ifndef EPH_SOURCE_ARCHIVE_H
#define EPH_SOURCE_ARCHIVE_H
#include <stdbool.h>
#include <stdint.h>

#include "util/attr.h"

struct diag;

#define ARCHIVE_DIR     "archives"         /* under the state directory */
#define ARCHIVE_SUFFIX  ".tar"             /* STATE/archives/<commit>.tar */
#define ARCHIVE_TIMEOUT (10 * 60 * 1000LL) /* ms git archive may take when the caller says 0 */

/* An archive held for a run. Owned strings (archive_release). */
struct archive {
	char *path;  /* STATE/archives/<commit>.tar, absolute when STATE_DIR is */
	int hold_fd; /* LOCK_SH on PATH.lock, O_CLOEXEC: keep it open while the archive is in use
	              * (shipped to a worker), so `eph gc` leaves it; -1 once released */
	bool built;  /* this call made it; false: it was in the cache */
};

/* Scheduler side: makes sure STATE_DIR/archives/COMMIT.tar holds `git archive --format=tar
 * COMMIT` of the bare repository MIRROR (STATE/mirrors/<key>.git, as source_resolve leaves it;
 * no fetch, no network: the commit must be in the mirror), building it once under the build
 * lock (git is run with an argv through gitrun(), killed after TIMEOUT_MS, 0 meaning
 * ARCHIVE_TIMEOUT), then holds it for the caller (A->hold_fd) and sets its last use.
 * Returns 0 and fills A (archive_release), or a negative value with one message in D and A
 * holding nothing: -EINVAL when COMMIT is not a full hex commit id (40 or 64 digits), -EIO
 * when git failed (the commit is not in the mirror, the mirror is not a repository: git's
 * words), -ETIMEDOUT when git outlasted the timeout, other -errno from the file system or
 * when git cannot be run. No partial archive is ever left at PATH. Blocking (git may take
 * seconds on a large commit): call it off the daemon's loop, as source_resolve is. */
EPH_MUST_CHECK int archive_get(const char *state_dir, const char *mirror, const char *commit,
                               int64_t timeout_ms, struct archive *a, struct diag *d);
/* Closes the hold and frees A's members; NULL is fine. */
void archive_release(struct archive *a);

#endif
