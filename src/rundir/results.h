/* src/rundir/results.h: a run's results, the files under RUN_DIR/results ($EPH_RESULTS of its
 * command): listed and copied out without reading any file whole into memory. */
#ifndef EPH_RUNDIR_RESULTS_H
#define EPH_RUNDIR_RESULTS_H
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

#define RUNDIR_RESULTS "results"

struct results_file {
	char *path; /* relative to RUN_DIR/results, "/"-separated, never ".." nor absolute */
	uint64_t size;
};

/* The regular files under RUN_DIR/results, sorted by path, into *OUT (N of them; caller frees
 * with results_files_free). Symbolic links and other non-regular files are left out. 0 (none
 * when there is no results directory), or -errno. */
EPH_MUST_CHECK int results_list(const char *run_dir, struct results_file **out, size_t *n);
void results_files_free(struct results_file *f, size_t n); /* NULL is fine */
/* Copies the N files F of RUN_DIR/results into directory TO (made, with the subdirectories
 * the paths need), by copy_file_range, else through a fixed buffer. 0 or -errno (*FAILED, if
 * not NULL, then names the path that failed; caller frees). */
EPH_MUST_CHECK int results_copy(const char *run_dir, const struct results_file *f, size_t n,
                                const char *to, char **failed);
/* Copies the bytes of file descriptor IN (from its offset) to OUT until IN's end: 0 or -errno.
 */
EPH_MUST_CHECK int results_copy_fd(int in, int out);

#endif
