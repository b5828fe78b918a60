/* src/agent/proctree.h: the processes descending from a pid, from /proc (the sampled
 * fallback of DESIGN.md "Memory": measure the tree's RSS and kill the tree). With the agent a
 * child subreaper, processes that setsid() or whose parent died stay under it. */
#ifndef EPH_AGENT_PROCTREE_H
#define EPH_AGENT_PROCTREE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/attr.h"

struct proctree {
	pid_t *pids; /* live (non-zombie) descendants of the root, root excluded */
	size_t n;
	uint64_t rss; /* sum of their resident set sizes, bytes */
};

/* Scans /proc for the live descendants of ROOT. 0 or -errno (cannot read /proc). */
EPH_MUST_CHECK int proctree_scan(pid_t root, struct proctree *t);
void proctree_free(struct proctree *t); /* members; NULL is fine */
/* Sends SIG to process group PGID (if > 0) and to every live descendant of ROOT; returns the
 * number of descendants found. */
size_t proctree_signal(pid_t root, pid_t pgid, int sig);

#endif
