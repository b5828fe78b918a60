/* src/agent/cgroup_place.h: where a run's memory cgroup goes, decided by reading only (the
 * cgroup mounts, the agent's own cgroup, its files), so that the decision is tested against
 * a fake tree (tests/unit/test_cgroup.c); cgroup.c makes what it decides. The rule
 * (docs/rundir.md "The cgroup"):
 * - under the agent's own cgroup (from /proc/self/cgroup), when that is not the root and the
 *   agent may write it: a host's, a container's or a delegated unit's limit then holds for
 *   the run. cgroup v2 enables no controller below a cgroup that holds processes, so there
 *   the agent must be the only process of its cgroup, and moves itself into the leaf
 *   <own>/agent before enabling +memory (as systemd's delegation document asks);
 * - else the top-level <mount>/ephemeron, where the agent may make it (root);
 * - else none: the agent samples, saying why. */
#ifndef EPH_AGENT_CGROUP_PLACE_H
#define EPH_AGENT_CGROUP_PLACE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/attr.h"
#include "util/buf.h"

enum cgroup_kind { CGROUP_V2 = 2, CGROUP_V1 = 1 };

/* The files the decision reads: the system's (cgroup_sys_self), or a test's. */
struct cgroup_sys {
	const char *mountinfo;   /* /proc/self/mountinfo */
	const char *self_cgroup; /* /proc/self/cgroup */
	pid_t pid;               /* the agent, as cgroup.procs lists it */
};

/* The system's files and getpid(). */
struct cgroup_sys cgroup_sys_self(void);

/* A parent for the run's cgroup. Strings owned (cgroup_place_free). */
struct cgroup_place {
	enum cgroup_kind kind;
	char *parent; /* the run's cgroup is made in this directory */
	char *base;   /* v2: +memory is enabled in cgroup.subtree_control from here down to
	               * parent (the cgroup2 mount, or the own cgroup) */
	char *leaf;   /* v2, own cgroup: where the agent moves itself first; NULL if not */
	bool own;     /* under the agent's own cgroup (else <mount>/ephemeron) */
};

/* The place under the agent's own cgroup of KIND (v1: of CONTROLLER, "memory" or "freezer";
 * v2: CONTROLLER is ignored). 0 with *PL filled; -ENOENT when the own cgroup is the root
 * (nothing appended to WHY: the top-level place is then the place); another -errno, with
 * why appended to WHY, when the own cgroup cannot hold it. */
EPH_MUST_CHECK int cgroup_place_own(const struct cgroup_sys *sys, enum cgroup_kind kind,
                                    const char *controller, struct cgroup_place *pl,
                                    struct buf *why);
/* The top-level place: <mount>/ephemeron. 0, or -ENOENT with why appended to WHY (no such
 * mount; v2: no memory controller in it). */
EPH_MUST_CHECK int cgroup_place_top(const struct cgroup_sys *sys, enum cgroup_kind kind,
                                    const char *controller, struct cgroup_place *pl,
                                    struct buf *why);
void cgroup_place_free(struct cgroup_place *pl); /* members; zeroes it */
/* The directory of the agent's own cgroup of KIND (v1: of CONTROLLER), read only: NULL when
 * there is none, or it is the root. Caller frees. */
char *cgroup_own_dir(const struct cgroup_sys *sys, enum cgroup_kind kind, const char *controller);

/* ---- small cgroup file helpers, shared with cgroup.c */

/* Writes VAL to DIR/FILE in one write(2). 0 or -errno. */
int cgroup_file_write(const char *dir, const char *file, const char *val);
/* Reads DIR/FILE into OUT (NUL-terminated, truncated to N-1 bytes). 0 or -errno. */
int cgroup_file_read(const char *dir, const char *file, char *out, size_t n);
bool cgroup_file_exists(const char *dir, const char *file);
/* Whether WORD is an item of LIST, separated by SEP (trailing newlines and blanks ignored). */
bool cgroup_has_word(const char *list, const char *word, char sep);
/* Appends S (or "WHAT PATH: strerror(-RC)") to WHY, "; "-separated; past its cap, dropped. */
void cgroup_why(struct buf *why, const char *s);
void cgroup_whyf(struct buf *why, const char *what, const char *path, int rc);

#endif
