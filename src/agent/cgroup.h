/* src/agent/cgroup.h: a memory cgroup for one run, v2 or v1 (DESIGN.md "Memory"). Its parent
 * is the agent's own cgroup where that can hold it, else <mount>/ephemeron (cgroup_place.h),
 * unless $EPH_CGROUP_ROOT names another directory of a cgroup hierarchy (v2, or a v1 memory
 * hierarchy). */
#ifndef EPH_AGENT_CGROUP_H
#define EPH_AGENT_CGROUP_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/cgroup_place.h"
#include "util/attr.h"
#include "util/buf.h"

struct cgroup {
	enum cgroup_kind kind;
	char *path;          /* the run's memory cgroup directory */
	char *freezer;       /* v1: the run's freezer cgroup directory, or NULL */
	bool has_peak;       /* v2: memory.peak exists (kernel >= 5.19) */
	uint64_t oom_before; /* the OOM-kill counter when the cgroup was set up */
	uint64_t max_seen;   /* the largest usage cgroup_usage() has read */
	bool adopted;        /* the agent's own cgroup (a batch job's), made and emptied by
	                      * another: read only, never joined, killed or removed */
};

/* Creates the cgroup NAME (e.g. "run-42-812": unique to one agent) with memory limit LIMIT
 * bytes (0 = none; swap is never headroom), trying v2 (own cgroup, then top-level) then v1
 * (likewise), or only what $EPH_CGROUP_ROOT names. On v2 under its own cgroup the agent
 * first moves itself into <own>/agent, where it stays. Where NAME exists, NAME.1, NAME.2, ... is
 * made instead: a cgroup this agent did not make is never removed or joined. Returns 0, or -errno
 * with why (for the log) appended to WHY. On failure nothing is left behind. */
EPH_MUST_CHECK int cgroup_create(struct cgroup *cg, const char *name, uint64_t limit,
                                 struct buf *why);
/* Takes the agent's own memory cgroup (v2, else v1) as the run's, as it is: a batch system's
 * job, whose limit that system set (EPH_ENFORCE=job). The command, a child, is in it already;
 * nothing is made, joined, killed or removed (cgroup_attach and cgroup_destroy do nothing; the
 * caller kills by the process tree). 0, or -ENOENT with why appended to WHY. */
EPH_MUST_CHECK int cgroup_adopt(struct cgroup *cg, struct buf *why);
/* Fills the rest of CG, whose kind is v2 and path is set, from its files: whether it has
 * memory.peak (kernel >= 5.19; else the peak is the largest cgroup_usage() sample) and its
 * OOM-kill counter now. */
void cgroup_v2_probe(struct cgroup *cg);
/* Moves PID into the cgroup (and the v1 freezer cgroup). 0 or -errno. */
EPH_MUST_CHECK int cgroup_attach(struct cgroup *cg, pid_t pid);
/* Current usage in bytes. 0 or -errno. */
EPH_MUST_CHECK int cgroup_usage(struct cgroup *cg, uint64_t *bytes);
/* The peak usage and how it was measured ("cgroup1 memory.max_usage_in_bytes", "cgroup2
 * memory.peak", or "cgroup2 max of memory.current samples"). */
void cgroup_peak(struct cgroup *cg, uint64_t *bytes, const char **method);
/* OOM kills in this cgroup since it was set up. */
uint64_t cgroup_oom_kills(struct cgroup *cg);
/* The number of processes in the cgroup (0 when empty or unreadable). */
size_t cgroup_nprocs(struct cgroup *cg);
/* Sends SIG to every process of the cgroup; the number signalled. */
size_t cgroup_signal(struct cgroup *cg, int sig);
/* Kills every process of the cgroup and waits (at most ~5 s) until it is empty: v2 through
 * cgroup.kill, v1 by freezing, SIGKILLing each process and thawing, until empty. REAP (may
 * be NULL) is called with ARG each round, to reap the dead. 0 when empty, -EBUSY if processes
 * remain. */
int cgroup_kill_all(struct cgroup *cg, void (*reap)(void *), void *arg);
/* Removes the cgroup directories (waiting briefly for exiting processes) and frees; the
 * struct may be zeroed. 0 or -errno from rmdir. */
int cgroup_destroy(struct cgroup *cg);

#endif
