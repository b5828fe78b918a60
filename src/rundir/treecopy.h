/* src/rundir/treecopy.h: a run's private, writable copy of a shared read-only tree (the
 * agent's RUN_DIR/work): copied file by file with copy_file_range (a reflink where the file
 * system shares extents), else through a fixed buffer; never a file whole in memory. */
#ifndef EPH_RUNDIR_TREECOPY_H
#define EPH_RUNDIR_TREECOPY_H
#include "util/attr.h"

#define RUNDIR_WORK "work"

/* Copies the tree FROM into TO (made; must not exist): directories, regular files (their
 * modes plus owner write, their mtimes) and symbolic links (as they are). Anything else is
 * left out. 0 or -errno (*FAILED, when not NULL, then names the path that failed; caller
 * frees). */
EPH_MUST_CHECK int treecopy(const char *from, const char *to, char **failed);
/* Removes the tree PATH (not following symbolic links), making its directories writable
 * first. 0 (also when PATH is gone) or the first -errno. */
EPH_MUST_CHECK int treecopy_remove(const char *path);

#endif
