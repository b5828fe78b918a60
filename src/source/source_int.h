/* src/source/source_int.h: internal to the source component (source.c, source_cache.c,
 * source_worktree.c, source_unpack.c, archive.c, wheels.c): the helpers and limits its files share.
 */
#ifndef EPH_SOURCE_SOURCE_INT_H
#define EPH_SOURCE_SOURCE_INT_H
#include <stdbool.h>
#include <stdint.h>

#include "util/attr.h"

struct diag;

#define SOURCE_STATE_FILE    "eph-state.json"
#define SOURCE_LOCAL_MS      (10 * 60 * 1000) /* local git commands: far beyond need */
#define SOURCE_SUBMOD_MS     (30 * 60 * 1000) /* submodules are fetched from their remotes */
#define SOURCE_MAX_RETRIES   8
#define SOURCE_BUILD_POLL_MS 20 /* waiting for a build lock with a cancel fd or a deadline */

/* Adds a message (printf FMT, with any URL's credentials redacted) to D. */
void source_err(struct diag *d, const char *fmt, ...) EPH_PRINTF(2, 3);
bool source_is_dir(const char *path);
bool source_exists(const char *path);
/* Runs git with ARGS; on success (exit 0) returns 0 and, when OUT is not NULL, *OUT = its
 * stdout without the trailing newline (caller frees). Otherwise returns -EIO and, when WHY is
 * not NULL, *WHY = why (caller frees), or -errno when git cannot be started. */
int source_git(const char *const *args, int64_t timeout_ms, char **out, char **why);
/* Whether S is a full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits. */
bool source_is_commit_id(const char *s);
/* Takes the write bits off every file and directory under PATH (symlinks left alone), so that
 * a run cannot modify a tree other runs share. 0 or -errno. */
int source_make_readonly(const char *path);
/* Removes the entries of DIR named by a commit id (the trees of STATE/src and STATE/sources)
 * past the KEEP most recently used (their hold lock's mtime), least recently used first,
 * skipping those a live run holds (source_cache_remove). Best effort. */
void source_prune(const char *dir, int keep);

#endif
