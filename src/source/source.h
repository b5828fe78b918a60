/* src/source/source.h: the job's code. The scheduler side resolves source.repo/branch to a
 * commit when a run is created, through one bare mirror per repository
 * (STATE/mirrors/<key>.git, fetched at most once per source.refresh); the agent side checks
 * that commit out, once, into the shared read-only cache STATE/src/<commit>. docs/source.md
 * tells the whole story; this header is the contract.
 *
 * Cache entries (worktrees here, venvs in the agent) share one locking convention, so that
 * `eph gc` and the pruning after a checkout never remove what a live run uses, and a run
 * waits for another's build, never for another's whole run:
 *   DIR/<key>        the entry, made aside and renamed into place, never modified after;
 *   DIR/<key>.lock   its hold lock: LOCK_SH held by every user, from before it looks for the
 *                    entry to the end of its run (so also while it builds it); a remover
 *                    takes LOCK_EX|LOCK_NB, and gives up when anyone holds it. Its mtime is
 *                    the entry's last use (LRU order).
 *   DIR/<key>.build  its build lock: LOCK_EX, taken under the hold lock by whoever finds the
 *                    entry missing, who looks again once it has it (the previous holder may
 *                    have built it) and builds only if it is still missing.
 * Lock files are removed only by whoever removes the entry, while holding LOCK_EX on the hold
 * lock; a holder therefore checks, once it has the hold lock, that the path still names the
 * inode it locked, and starts again if not (source_cache_lock does). Since no one holds the
 * build lock without the hold lock, the remover never races a build.
 * Mirrors (STATE/mirrors/<key>.git) follow it too, with one difference: a fetch modifies the
 * mirror in place under LOCK_EX on its lock; a checkout holds LOCK_SH while it clones. */
#ifndef EPH_SOURCE_SOURCE_H
#define EPH_SOURCE_SOURCE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/attr.h"

struct conf_source;
struct diag;

/* Where a run's code comes from, decided when the run is created. Owned strings
 * (source_pin_clear). Exactly one of IN_PLACE (dir set) or pinned (mirror + commit set). */
struct source_pin {
	bool in_place;
	char *dir;     /* in place: the absolute directory the run runs in; else NULL */
	char *repo;    /* pinned: source.repo for people: URL without userinfo, or absolute path */
	char *mirror;  /* pinned: absolute path of the bare mirror, STATE/mirrors/<key>.git */
	char *branch;  /* pinned: the branch resolved (source.branch, else the mirror's HEAD) */
	char *commit;  /* pinned: full commit id (40 hex, or 64 for SHA-256 repositories) */
	char *warning; /* NULL, or why the run uses older code than the remote may have: the fetch
	                * failed (and why), or the branch was deleted (with use_last). For the run
	                * record's warning column; free of credentials. */
	char *note;    /* NULL, or information: the branch moved non-fast-forward (force-push). */
};

/* Resolves SRC (the jobs file's source section; BASE_DIR = the jobs file's directory, where a
 * relative source.repo and the in-place default start from) for a run created now:
 * - no source.repo: in place in BASE_DIR;
 * - a local path that is not a git repository: in place there;
 * - a URL (ssh://, git@host:path, https://, http://, git://, file://) or the path of a git
 *   repository: the mirror STATE_DIR/mirrors/<key>.git is cloned (first time) or fetched with
 *   --prune (force: it follows force-pushes), unless the last fetch attempt is younger than
 *   SRC->refresh seconds; concurrent callers serialize on an flock of <key>.lock, and the
 *   second uses the first's fetch. A failed attempt counts as an attempt: within refresh, the
 *   next runs reuse its error instead of waiting for another timeout. Then the branch is
 *   resolved to a commit;
 * - with SRC->commit set (`eph daemon --from-repo`), as for a URL but without any fetch and
 *   without the lock (nothing is written, so a fetch in progress, such as the daemon's own
 *   poll, does not hold it up): the run is pinned to that commit (the mirror must exist), with
 *   a warning when the mirror's last fetch failed.
 * Returns 0 with PIN filled (PIN->warning set when the fetch failed and on_fetch_error is
 * use_last, or when a deleted branch runs its last known commit). Returns a negative value
 * with one message in D (credentials stripped) when the run must fail with reason `source`:
 * no mirror yet and the clone failed (-EIO), the fetch failed with on_fetch_error: fail (-EIO),
 * the branch does not exist or no longer exists without a known commit to fall back on
 * (-ENOENT), source.repo is a missing path (-ENOENT), the state directory is unusable
 * (-errno), git cannot be run (-errno). PIN holds nothing to free on failure. */
EPH_MUST_CHECK int source_resolve(const char *state_dir, const struct conf_source *src,
                                  const char *base_dir, struct source_pin *pin, struct diag *d);
void source_pin_clear(struct source_pin *pin); /* frees the members and zeroes; NULL is fine */

/* Classifies REPO (relative to BASE_DIR) without any network access. Sets *URL_OUT (caller
 * frees) and returns 0 when REPO is a URL or the path of a git repository (*URL_OUT = the URL,
 * or the real absolute path, that git fetches from and the mirror is keyed by), or 1 when REPO
 * is a local directory that is not a git repository (*URL_OUT = its real absolute path: the run
 * happens in place). -ENOENT / -ENOTDIR for a missing or non-directory local path (*URL_OUT
 * NULL). */
EPH_MUST_CHECK int source_repo_url(const char *repo, const char *base_dir, char **url_out);
/* The mirror's key for URL (as source_repo_url gives it): 32 hex characters of SHA-256(URL).
 * STATE/mirrors/<key>.git is its mirror, STATE/mirrors/<key>.git.lock its lock (held LOCK_EX
 * during a clone or fetch), STATE/mirrors/<key>.git/eph-state.json the last fetch attempt
 * and the last commit resolved per branch. Caller frees. */
char *source_mirror_key(const char *url);
/* The commit BRANCH (NULL: the mirror's HEAD) points to in the mirror MIRROR, read locally
 * (no fetch). Returns 0 and *commit_out (caller frees), -ENOENT if there is no such branch,
 * or -errno if git cannot be run. */
EPH_MUST_CHECK int source_mirror_commit(const char *mirror, const char *branch, char **commit_out);

/* The subject line of COMMIT (a full commit id) in the mirror MIRROR, read with `git log`
 * within TIMEOUT_MS; NULL when git fails, times out or the subject is empty. Caller frees. */
char *source_commit_subject(const char *mirror, const char *commit, int64_t timeout_ms);

/* How the fetches of a repository source are going, read from its mirror's eph-state.json
 * (source_health). Owned strings (source_health_clear); times are UTC seconds, 0 = never. */
struct source_health {
	bool fetched;         /* source.repo is a repository that is fetched into a mirror (a URL
	                       * or a git repository's path); false: no source.repo, or a plain
	                       * directory run in place (nothing is fetched: no alarm), and then
	                       * every other member is 0 / NULL */
	bool mirrored;        /* its mirror exists (it was cloned once) */
	char *repo;           /* source.repo for people: URL without userinfo, or absolute path */
	char *key;            /* the mirror's key (source_mirror_key) */
	char *branch;         /* source.branch, else the mirror's HEAD branch; NULL if unknown */
	char *commit;         /* the last commit resolved for BRANCH: what runs use; NULL if none */
	double attempt_at;    /* the last fetch attempt */
	bool failing;         /* the last attempt failed */
	double fetched_at;    /* the last successful fetch (or the clone) */
	double failing_since; /* when FAILING: the first failed attempt of this outage (0 when
	                       * unknown: a state written by an eph that did not record it; the next
	                       * failed attempt records it); 0 otherwise */
	char *error;          /* when FAILING: why the last attempt failed (git's words, free of
	                       * credentials); NULL otherwise */
};

/* Reads the fetch health of SRC (as source_resolve classifies it; BASE_DIR the jobs file's
 * directory) from STATE_DIR's mirror, without fetching, without running git and without
 * waiting for the mirror's lock (the state file is replaced atomically), so it may be called
 * at any time, from the daemon's loop too. Returns 0 with OUT filled (source_health_clear;
 * OUT->fetched false for a source run in place), or -ENOENT / -ENOTDIR when source.repo is a
 * missing or non-directory local path (OUT zeroed). A missing or unreadable state file reads
 * as no attempt yet. */
EPH_MUST_CHECK int source_health(const char *state_dir, const struct conf_source *src,
                                 const char *base_dir, struct source_health *out);
void source_health_clear(struct source_health *h); /* frees the members and zeroes; NULL ok */

/* A worktree held for a run. */
struct source_worktree {
	char *path;  /* STATE/src/<commit> (or STATE/sources/<commit>: source_unpack), owned */
	int hold_fd; /* holds LOCK_SH on STATE/src/<commit>.lock: keep it open for the run's life
	              * (and across exec into the command if the command should hold it: it is
	              * O_CLOEXEC, so the agent itself must outlive the command, which it does) */
	bool built;  /* this call made the checkout; false: it was in the cache already */
};

/* Agent side: makes sure STATE_DIR/src/COMMIT holds a checkout of COMMIT from MIRROR (with its
 * submodules, recursively, when it has a .gitmodules; they are fetched from the URLs the
 * repository names, relative ones against the mirror's own remote), then holds it for the
 * caller. It takes LOCK_SH on STATE/src/COMMIT.lock (WT->hold_fd) first; the checkout is made
 * once, under LOCK_EX on STATE/src/COMMIT.build (with LOCK_SH on the mirror's lock): built
 * aside in STATE/src/COMMIT.tmp (a leftover of a crash is removed first), made read-only (no
 * write bit on any file or directory, so a run cannot modify what other runs share; it writes
 * in its run directory or elsewhere), then renamed into place; a concurrent caller waits for
 * the build only, then finds it. The worktree is a `git clone --shared` of the mirror at a
 * detached HEAD = COMMIT, so `git rev-parse HEAD` works in it. The hold lock's mtime is set to
 * now (last use). Finally, when KEEP > 0, worktrees past the KEEP most recently used are
 * removed, least recently used first, skipping any a live run holds.
 * Returns 0 and fills WT (source_worktree_release), or -errno with one message in D: -EINVAL
 * when COMMIT is not a hex commit id, -EIO when git failed (the commit is not in the mirror,
 * a submodule cannot be fetched: the message says why), other -errno from the file system. */
EPH_MUST_CHECK int source_checkout(const char *state_dir, const char *mirror, const char *commit,
                                   int keep, struct source_worktree *wt, struct diag *d);
/* Agent side of a remote run (spec.json source.archive; archive.h makes the archive): makes
 * sure STATE_DIR/sources/COMMIT holds the files of the tar archive ARCHIVE (a path on this
 * host, `git archive` of exactly COMMIT), then holds it for the caller, under the same
 * convention and with the same pruning (KEEP) as source_checkout: unpacked once, by the host's
 * tar (`tar -xf ARCHIVE -C DIR`, the first tar on PATH, else /bin/tar or /usr/bin/tar; run
 * with an argv, no shell, no git), aside in STATE/sources/COMMIT.tmp under the build lock,
 * made read-only, then renamed into place (should the rename find the tree already there,
 * made by someone outside the convention, that one is used and ours removed). Its own
 * directory, apart from STATE/src: it has no .git, so it is not a checkout.
 * Returns 0 and fills WT (source_worktree_release), or -errno with one message in D: -EINVAL
 * when COMMIT is not a hex commit id, -EIO when tar failed (not a tar archive, truncated:
 * tar's words), -ENOENT when the archive or tar is missing, other -errno from the file
 * system. */
EPH_MUST_CHECK int source_unpack(const char *state_dir, const char *archive, const char *commit,
                                 int keep, struct source_worktree *wt, struct diag *d);
#define SOURCE_UNPACK_DIR "sources" /* STATE/sources/<commit>: source_unpack's trees */
/* Closes the hold (the run is over) and frees WT's members; NULL is fine. */
void source_worktree_release(struct source_worktree *wt);

/* Cache entries (see the top of this file). LOCK_PATH is DIR/<key>.lock. */
/* Opens (creating, mode 0600) LOCK_PATH and takes LOCK_SH (SHARED) or LOCK_EX on it, waiting,
 * and checks it still names the file locked (else retries). Returns the fd (O_CLOEXEC) or
 * -errno. */
EPH_MUST_CHECK int source_cache_lock(const char *lock_path, bool shared);
/* Sets the entry's last use (LOCK_PATH's mtime) to now through the held FD; best effort (a
 * failure only spoils the LRU order). */
void source_cache_touch(int fd);
/* Opens (creating, mode 0600) BUILD_PATH, DIR/<key>.build, and takes LOCK_EX on it, waiting
 * for a concurrent builder; call it while holding LOCK_SH on DIR/<key>.lock, then look for the
 * entry again. With CANCEL_FD (-1: none) or DEADLINE_MS (CLOCK_MONOTONIC ms; 0: none), the
 * wait polls the lock every few ms and gives up with -ECANCELED once CANCEL_FD is readable,
 * -ETIMEDOUT once DEADLINE_MS passed. In every case a gitrun_abort() (a stop's signal handler)
 * ends the wait with -ECANCELED, as it ends the hold lock's. Returns the fd (O_CLOEXEC; close
 * it once built) or -errno. */
EPH_MUST_CHECK int source_cache_build_lock(const char *build_path, int cancel_fd,
                                           int64_t deadline_ms);
/* Gets the cache entry DIR/KEY, building it if missing, by the convention at the top of this
 * file: makes DIR (and its parents, mode DIR_MODE), takes the hold lock DIR/KEY.lock shared
 * (source_cache_lock); if READY(DIR/KEY, ARG) is false, takes the build lock DIR/KEY.build
 * (source_cache_build_lock with CANCEL_FD and DEADLINE_MS: -1 and 0 wait without limit), asks
 * READY again and, if still false, calls BUILD(DIR/KEY, ARG, D), which must leave either a
 * complete entry (READY true) and return 0, or return -errno with its message in D; then
 * releases the build lock and sets the entry's last use (source_cache_touch).
 * Returns 0 with *HOLD_FD the hold lock's fd (O_CLOEXEC; the caller closes it once the entry
 * is no longer used) and *BUILT true when this call built the entry, false when it was there.
 * On failure returns -errno with *HOLD_FD -1, *BUILT false and no lock held: BUILD's own
 * return code (its message in D), or from the locks and DIR with one message in D ("cannot
 * create DIR: ...", "cannot lock PATH: ..."), except when the wait for the build lock was
 * given up (-ECANCELED, -ETIMEDOUT): then D gets nothing, the caller words it (BUILD was not
 * called). */
EPH_MUST_CHECK int source_cache_get(const char *dir, const char *key, mode_t dir_mode,
                                    bool (*ready)(const char *path, void *arg),
                                    int (*build)(const char *path, void *arg, struct diag *d),
                                    void *arg, int cancel_fd, int64_t deadline_ms, int *hold_fd,
                                    bool *built, struct diag *d);
/* Removes DIR/KEY (and DIR/KEY.tmp, DIR/KEY.build, DIR/KEY.lock) if no one holds the lock
 * (LOCK_EX|LOCK_NB). Adds the bytes
 * freed (du-style: allocated blocks) to *FREED when not NULL. With DRY_RUN, removes nothing
 * but still checks the lock and counts the bytes. Returns 0 when removed (or would be),
 * -EBUSY when held, -ENOENT when DIR/KEY does not exist, or -errno. */
EPH_MUST_CHECK int source_cache_remove(const char *dir, const char *key, bool dry_run,
                                       uint64_t *freed);
/* Removes the mirror STATE_DIR/mirrors/NAME (NAME = <key>.git) as source_cache_remove does,
 * but also refuses, with -ENOTEMPTY, while a worktree of STATE_DIR/src borrows its objects
 * (its .git/objects/info/alternates names the mirror's objects): removing the mirror would
 * break it. The check is made under the mirror's LOCK_EX, which a checkout's clone holds
 * shared, so no worktree starts borrowing meanwhile. With DRY_RUN, only the worktrees a live
 * run holds count (`eph gc` removes the others before it comes to the mirrors). */
EPH_MUST_CHECK int source_mirror_remove(const char *state_dir, const char *name, bool dry_run,
                                        uint64_t *freed);
/* Bytes allocated under PATH (du -s, in bytes); 0 if it does not exist. */
uint64_t source_du(const char *path);
/* Removes PATH recursively, giving back the write bits a read-only tree lacks. 0 (also when
 * PATH does not exist) or -errno. */
EPH_MUST_CHECK int source_rmtree(const char *path);

#endif
