/* src/source/wheels.h: the Python dependencies a remote run carries: the wheels of a
 * requirements file for the worker's Python version, made once on the scheduler and cached
 * there, plus a pip wheel, so that the worker's agent builds its venv offline, with neither
 * pip nor ensurepip installed there (docs/rundir.md, "spec.json: the runtime"; the agent's
 * side is venv.h's O->wheels). Groundwork for the remote executors (issue 12): exec_ssh.c ships
 * the directory this gives and names it in spec.json's runtime.wheels.
 *
 * The sets are a cache under the convention of source.h:
 *   STATE/wheels/<key>/       the set, made aside (<key>.tmp) and renamed into place once
 *                             complete (wheels hold no absolute path, unlike venvs);
 *   STATE/wheels/<key>.lock   its hold lock (LOCK_SH while in use; mtime = last use);
 *   STATE/wheels/<key>.build  its build lock: made once when several runs want it.
 * <key> = the first 32 hex digits of SHA-256("eph-wheels 1", NUL, the target version "X.Y",
 * NUL, the platform tag, NUL, the requirements file's content). Like the venvs' key it covers
 * the file itself, not the files it includes with -r or -c. */
#ifndef EPH_SOURCE_WHEELS_H
#define EPH_SOURCE_WHEELS_H
#include <stdbool.h>
#include <stdint.h>

#include "util/attr.h"

struct diag;

#define WHEELS_DIR      "wheels"               /* under the state directory */
#define WHEELS_KEY_LEN  32                     /* hex digits of the key */
#define WHEELS_PLATFORM "manylinux2014_x86_64" /* default target platform tag */
#define WHEELS_TIMEOUT  (30 * 60 * 1000LL)     /* ms pip may take when the caller says 0 */

struct wheels_opts {
	const char *state_dir;      /* absolute; the wheels live in STATE_DIR/wheels */
	const char *python;         /* the scheduler's interpreter that runs pip: a path, or a
	                             * name looked up on PATH; NULL: "python3" */
	const char *target_version; /* the worker's Python, "X.Y" (or "X.Y.Z": X.Y is used);
	                             * NULL: the scheduler's own */
	const char *platform;       /* the worker's platform tag, for a target version other than
	                             * the scheduler's; NULL: WHEELS_PLATFORM */
	const char *requirements;   /* the requirements file, absolute or relative to ROOT */
	const char *root;           /* pip's working directory: the run's source (a checkout of
	                             * its commit), where relative paths in the file start */
	int64_t timeout_ms;         /* for the whole build; 0: WHEELS_TIMEOUT */
};

/* A set of wheels held for a run. Owned strings (wheels_release). */
struct wheels {
	char *path;    /* STATE/wheels/<key>: *.whl, one of them pip's */
	char *key;     /* WHEELS_KEY_LEN hex */
	char *version; /* the target version used, "X.Y" */
	char *pip;     /* the pip wheel's file name in PATH ("pip-23.0.1-py3-none-any.whl") */
	int hold_fd;   /* LOCK_SH on PATH.lock, O_CLOEXEC: keep it while the set is in use */
	bool built;    /* this call made it; false: it was in the cache */
};

/* Scheduler side: makes sure STATE/wheels/<key> holds a wheel of every distribution
 * O->requirements needs for Python O->target_version, and a pip wheel, then holds it:
 * - target version = the scheduler's Python's own: `PYTHON -m pip wheel -r REQUIREMENTS -w
 *   DIR` (wheels are built from sdists where needed: the scheduler builds, the worker does
 *   not);
 * - another version: `PYTHON -m pip download --only-binary=:all: --python-version X.Y
 *   --implementation cp --platform PLATFORM -r REQUIREMENTS -d DIR`: binary wheels only, as
 *   nothing can be built for another interpreter here;
 * - then a pip wheel, unless the requirements brought one: the one the scheduler's Python
 *   ships for its own ensurepip (sysconfig's WHEEL_PKG_DIR, Debian's python3-pip-whl in
 *   /usr/share/python-wheels, or ensurepip/_bundled), when the versions are the same; for
 *   another version `pip download pip` for it first (a newer Python may need a newer pip),
 *   falling back on that local wheel when the index cannot be reached.
 * pip runs with the caller's environment (its configuration, index and credentials stay on the
 * scheduler) in ROOT. Returns 0 and fills W (wheels_release), or a negative value with one
 * message in D and W holding nothing: -ENOPKG when a requirement has no wheel for that version
 * (the message names it: "no wheel of \"NAME\" for Python X.Y (PLATFORM)..."), -ENOENT the
 * interpreter or a pip wheel is not found, -EIO pip failed otherwise (its last error line),
 * -ETIMEDOUT, -EINVAL a malformed target version, other -errno from the file system. Nothing
 * partial is left at STATE/wheels/<key>. Blocking (pip may take minutes): call it where
 * that is fine, as the daemon's preparation children are, never on its loop. */
EPH_MUST_CHECK int wheels_prepare(const struct wheels_opts *o, struct wheels *w, struct diag *d);
/* Closes the hold and frees W's members; NULL is fine. */
void wheels_release(struct wheels *w);
/* The pip wheel of the set DIR: the first, in name order, of its files pip-*.whl (a set holds
 * one); NULL if none. Caller frees. Both sides use it: the agent runs pip from that wheel. */
char *wheels_pip_name(const char *dir);
/* The requirement pip's stderr ERR says it found no distribution of ("No matching distribution
 * found for REQ"); NULL if it says none (or ERR is NULL). Caller frees. Both sides use it: the
 * scheduler when it makes the wheels, the agent when it installs from them. */
char *wheels_pip_missing(const char *err);

#endif
