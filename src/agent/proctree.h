/* src/agent/proctree.h: the processes descending from a pid, from /proc (the sampled
 * fallback of DESIGN.md "Memory": measure the tree's memory and kill the tree). With the agent
 * a child subreaper, processes that setsid() or whose parent died stay under it. */
#ifndef EPH_AGENT_PROCTREE_H
#define EPH_AGENT_PROCTREE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/attr.h"

struct proctree {
	pid_t *pids; /* live (non-zombie) descendants of the root, root excluded */
	size_t n;
	uint64_t rss; /* sum of their resident set sizes, bytes: a page shared by k of them
	               * (copy-on-write after fork, shared libraries) counts k times */
	uint64_t pss; /* with proctree_scan's PSS: sum of their proportional set sizes
	               * (/proc/PID/smaps_rollup "Pss:"), a page shared by k processes counting
	               * 1/k in each; the RSS of a process without one. Else 0. */
};

/* Scans /proc for the live descendants of ROOT; with PSS also reads each one's
 * smaps_rollup (costlier: it walks the process's page tables). 0 or -errno (cannot read
 * /proc). */
EPH_MUST_CHECK int proctree_scan(pid_t root, bool pss, struct proctree *t);
void proctree_free(struct proctree *t); /* members; NULL is fine */
/* Sends SIG to process group PGID (if > 0) and to every live descendant of ROOT; returns the
 * number of descendants found. */
size_t proctree_signal(pid_t root, pid_t pgid, int sig);

#endif
