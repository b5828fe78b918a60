/* src/agent/cgroup.c: a run's memory cgroup, v2 or v1, made where cgroup_place.c says. */
#include "agent/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "util/xalloc.h"

#define CGROUP2_MAGIC 0x63677270
#define CGROUP1_MAGIC 0x27e0eb
#define CG_NUM        32 /* a decimal uint64_t */

static int
cg_read_u64(const char *dir, const char *file, uint64_t *v)
{
	char b[64];
	int rc = cgroup_file_read(dir, file, b, sizeof(b));

	if (rc < 0)
		return rc;
	if (strncmp(b, "max", 3) == 0) {
		*v = UINT64_MAX;
		return 0;
	}
	*v = strtoull(b, NULL, 10);
	return 0;
}

/* The value of "KEY N" lines (memory.events, memory.oom_control). */
static uint64_t
cg_read_key(const char *dir, const char *file, const char *key)
{
	char b[1024];
	const char *p;
	size_t kl = strlen(key);

	if (cgroup_file_read(dir, file, b, sizeof(b)) < 0)
		return 0;
	for (p = b; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return strtoull(p + kl + 1, NULL, 10);
	return 0;
}

static int
mkdir_ok(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

#define CG_TRIES 100 /* names tried after NAME: NAME.1 ... NAME.99 */

/* Makes PARENT/NAME, or PARENT/NAME.N when that exists: a directory this agent did not make
 * may be another live run's (even an empty one: an agent creates its cgroup a moment before
 * its command joins it), so it is never removed or reused. Caller frees; NULL with *RC. */
static char *
make_run_dir(const char *parent, const char *name, int *rc)
{
	for (int i = 0; i < CG_TRIES; i++) {
		char *path = i == 0 ? xasprintf("%s/%s", parent, name)
		                    : xasprintf("%s/%s.%d", parent, name, i);

		if (mkdir(path, 0755) == 0) {
			*rc = 0;
			return path;
		}
		*rc = -errno;
		free(path);
		if (*rc != -EEXIST)
			return NULL;
	}
	return NULL;
}

/* Removes a half-made run cgroup (cg->path, if any). */
static void
abandon(struct cgroup *cg)
{
	if (cg->path == NULL)
		return;
	rmdir(cg->path);
	free(cg->path);
	cg->path = NULL;
}

/* Makes the run's cgroup NAME in PARENT (cg->path) and, when LIMIT > 0, writes LIMIT (in NUM,
 * decimal) to its FILE, which it must have. The caller removes cg->path on failure. */
static int
make_limited(struct cgroup *cg, const char *parent, const char *name, const char *file,
             uint64_t limit, char num[static CG_NUM], struct buf *why)
{
	char *what;
	int rc;

	cg->path = make_run_dir(parent, name, &rc);
	if (cg->path == NULL) {
		cgroup_whyf(why, "creating a cgroup in", parent, rc);
		return rc;
	}
	if (!cgroup_file_exists(cg->path, file)) {
		what = xasprintf("no %s in", file);
		cgroup_whyf(why, what, cg->path, -ENOENT);
		free(what);
		return -ENOENT;
	}
	if (limit == 0)
		return 0;
	snprintf(num, CG_NUM, "%" PRIu64, limit);
	if ((rc = cgroup_file_write(cg->path, file, num)) < 0) {
		what = xasprintf("setting %s of", file);
		cgroup_whyf(why, what, cg->path, rc);
		free(what);
	}
	return rc;
}

/* ---- v2 */

/* Enables +memory in subtree_control from BASE down to PARENT (inclusive). */
static int
v2_enable(const char *base, const char *parent, struct buf *why)
{
	size_t bl = strlen(base);
	char *p = xstrdup(parent);
	int rc = 0;

	for (size_t i = bl; rc == 0; i++) {
		if (p[i] == '/' || p[i] == '\0') {
			char c = p[i], ctl[4096];

			p[i] = '\0';
			if (cgroup_file_read(p, "cgroup.subtree_control", ctl, sizeof(ctl)) < 0 ||
			    !cgroup_has_word(ctl, "memory", ' ')) {
				rc = cgroup_file_write(p, "cgroup.subtree_control", "+memory");
				if (rc < 0)
					cgroup_whyf(why, "enabling memory in", p, rc);
			}
			p[i] = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

/* Moves the agent (PID) out of its own cgroup PL->base into the leaf PL->leaf, which it
 * makes: a cgroup that holds a process enables no controller for its children. */
static int
v2_leave_own(const struct cgroup_place *pl, pid_t pid, struct buf *why)
{
	char num[32];
	int rc;

	if (mkdir(pl->leaf, 0755) < 0) {
		/* one this agent did not make is never joined */
		rc = -errno;
		cgroup_whyf(why, "creating", pl->leaf, rc);
		return rc;
	}
	snprintf(num, sizeof(num), "%d", (int)pid);
	if ((rc = cgroup_file_write(pl->leaf, "cgroup.procs", num)) < 0) {
		cgroup_whyf(why, "moving the agent into", pl->leaf, rc);
		rmdir(pl->leaf);
	}
	return rc;
}

/* Undoes v2_leave_own: its cgroup enables nothing yet, so the agent may go back. */
static void
v2_back_own(const struct cgroup_place *pl, pid_t pid)
{
	char num[32];

	snprintf(num, sizeof(num), "%d", (int)pid);
	if (cgroup_file_write(pl->base, "cgroup.procs", num) == 0)
		rmdir(pl->leaf);
}

static int
v2_make(struct cgroup *cg, const struct cgroup_place *pl, pid_t pid, const char *name,
        uint64_t limit, struct buf *why)
{
	char num[CG_NUM];
	int rc;

	if (!pl->own && (rc = mkdir_ok(pl->parent)) < 0) {
		cgroup_whyf(why, "creating", pl->parent, rc);
		return rc;
	}
	if (pl->leaf != NULL && (rc = v2_leave_own(pl, pid, why)) < 0)
		return rc;
	if ((rc = v2_enable(pl->base, pl->parent, why)) < 0) {
		if (pl->leaf != NULL)
			v2_back_own(pl, pid);
		return rc;
	}
	if ((rc = make_limited(cg, pl->parent, name, "memory.max", limit, num, why)) < 0)
		goto out;
	if (cgroup_file_exists(cg->path, "memory.swap.max") &&
	    (rc = cgroup_file_write(cg->path, "memory.swap.max", "0")) < 0) {
		cgroup_whyf(why, "setting memory.swap.max of", cg->path, rc);
		goto out;
	}
	if ((rc = cgroup_file_write(cg->path, "memory.oom.group", "1")) < 0) {
		cgroup_whyf(why, "setting memory.oom.group of", cg->path, rc);
		goto out;
	}
	cgroup_v2_probe(cg);
	rc = 0;
out:
	if (rc < 0)
		abandon(cg);
	return rc;
}

void
cgroup_v2_probe(struct cgroup *cg)
{
	cg->kind = CGROUP_V2;
	cg->has_peak = cgroup_file_exists(cg->path, "memory.peak");
	cg->oom_before = cg_read_key(cg->path, "memory.events", "oom_kill");
	cg->max_seen = 0;
}

/* $EPH_CGROUP_ROOT, a cgroup2 directory: the run's cgroup goes right under it. */
static int
v2_at_root(struct cgroup *cg, const struct cgroup_sys *sys, const char *root, const char *name,
           uint64_t limit, struct buf *why)
{
	struct cgroup_place pl;
	struct buf ign;
	char ctl[4096];
	int rc;

	/* +memory is enabled from the cgroup2 mount down, or from ROOT itself when ROOT is
	 * elsewhere (a cgroup2 mount we did not see, e.g. a bind) */
	buf_init(&ign, BUF_MAX_MSG);
	if (cgroup_place_top(sys, CGROUP_V2, NULL, &pl, &ign) < 0 ||
	    strncmp(root, pl.base, strlen(pl.base)) != 0) {
		cgroup_place_free(&pl);
		pl.kind = CGROUP_V2;
		pl.base = xstrdup(root);
	}
	buf_free(&ign);
	free(pl.parent);
	pl.parent = xstrdup(root);
	rc = cgroup_file_read(pl.base, "cgroup.controllers", ctl, sizeof(ctl));
	if (rc < 0 || !cgroup_has_word(ctl, "memory", ' ')) {
		cgroup_whyf(why, "no memory controller in", pl.base, rc < 0 ? rc : -ENOENT);
		rc = -ENOENT;
	} else {
		rc = v2_make(cg, &pl, sys->pid, name, limit, why);
	}
	cgroup_place_free(&pl);
	return rc;
}

/* ---- v1 */

/* The v1 freezer cgroup, named as the memory cgroup turned out to be, where it can be made:
 * it makes killing everything race-free; without it cgroup_kill_all loops. */
static void
v1_freezer(struct cgroup *cg, const struct cgroup_sys *sys)
{
	struct cgroup_place pl;
	struct buf why;
	int rc;

	buf_init(&why, BUF_MAX_MSG);
	if (cgroup_place_own(sys, CGROUP_V1, "freezer", &pl, &why) < 0 &&
	    cgroup_place_top(sys, CGROUP_V1, "freezer", &pl, &why) < 0)
		goto out;
	if (pl.own || mkdir_ok(pl.parent) == 0)
		cg->freezer = make_run_dir(pl.parent, strrchr(cg->path, '/') + 1, &rc);
	cgroup_place_free(&pl);
out:
	buf_free(&why);
}

static int
v1_make(struct cgroup *cg, const struct cgroup_sys *sys, const struct cgroup_place *pl,
        const char *name, uint64_t limit, struct buf *why)
{
	char num[CG_NUM];
	int rc;

	if (!pl->own && (rc = mkdir_ok(pl->parent)) < 0) {
		cgroup_whyf(why, "creating", pl->parent, rc);
		return rc;
	}
	if ((rc = make_limited(cg, pl->parent, name, "memory.limit_in_bytes", limit, num, why)) < 0)
		goto out;
	if (limit > 0) {
		/* memory+swap = memory: swap is no headroom */
		if (cgroup_file_exists(cg->path, "memory.memsw.limit_in_bytes") &&
		    (rc = cgroup_file_write(cg->path, "memory.memsw.limit_in_bytes", num)) < 0) {
			cgroup_whyf(why, "setting memory.memsw.limit_in_bytes of", cg->path, rc);
			goto out;
		}
	}
	(void)cgroup_file_write(cg->path, "memory.swappiness", "0");
	cg->kind = CGROUP_V1;
	cg->oom_before = cg_read_key(cg->path, "memory.oom_control", "oom_kill");
	v1_freezer(cg, sys);
	rc = 0;
out:
	if (rc < 0)
		abandon(cg);
	return rc;
}

/* ---- the choice */

/* The own place of KIND, then the top-level one, until one is made. */
static int
make_in(struct cgroup *cg, const struct cgroup_sys *sys, enum cgroup_kind kind, const char *name,
        uint64_t limit, struct buf *why)
{
	const char *ctl = kind == CGROUP_V2 ? NULL : "memory";
	int rc = -ENOENT;

	for (int top = 0; top < 2; top++) {
		struct cgroup_place pl;

		if (top ? cgroup_place_top(sys, kind, ctl, &pl, why) < 0
		        : cgroup_place_own(sys, kind, ctl, &pl, why) < 0)
			continue;
		rc = kind == CGROUP_V2 ? v2_make(cg, &pl, sys->pid, name, limit, why)
		                       : v1_make(cg, sys, &pl, name, limit, why);
		cgroup_place_free(&pl);
		if (rc == 0)
			return 0;
	}
	return rc;
}

int
cgroup_create(struct cgroup *cg, const char *name, uint64_t limit, struct buf *why)
{
	const char *root = getenv("EPH_CGROUP_ROOT");
	struct cgroup_sys sys = cgroup_sys_self();
	struct statfs sf;

	memset(cg, 0, sizeof(*cg));
	if (root != NULL && *root != '\0') {
		if (statfs(root, &sf) < 0) {
			int rc = -errno;

			cgroup_whyf(why, "EPH_CGROUP_ROOT", root, rc);
			return rc;
		}
		if (sf.f_type == CGROUP2_MAGIC)
			return v2_at_root(cg, &sys, root, name, limit, why);
		if (sf.f_type == CGROUP1_MAGIC) {
			struct cgroup_place pl = { .kind = CGROUP_V1, .parent = (char *)root };

			return v1_make(cg, &sys, &pl, name, limit, why);
		}
		cgroup_whyf(why, "EPH_CGROUP_ROOT", root, -ENOTDIR);
		return -ENOTDIR;
	}
	if (make_in(cg, &sys, CGROUP_V2, name, limit, why) == 0)
		return 0;
	return make_in(cg, &sys, CGROUP_V1, name, limit, why);
}

int
cgroup_adopt(struct cgroup *cg, struct buf *why)
{
	struct cgroup_sys sys = cgroup_sys_self();

	memset(cg, 0, sizeof(*cg));
	for (int v = 2; v >= 1; v--) {
		enum cgroup_kind kind = v == 2 ? CGROUP_V2 : CGROUP_V1;
		char *dir = cgroup_own_dir(&sys, kind, kind == CGROUP_V1 ? "memory" : NULL);

		if (dir == NULL ||
		    !cgroup_file_exists(dir, kind == CGROUP_V2 ? "memory.current"
		                                               : "memory.usage_in_bytes")) {
			free(dir);
			continue;
		}
		cg->path = dir;
		cg->adopted = true;
		if (kind == CGROUP_V2) {
			cgroup_v2_probe(cg);
		} else {
			cg->kind = CGROUP_V1;
			cg->oom_before = cg_read_key(dir, "memory.oom_control", "oom_kill");
		}
		return 0;
	}
	cgroup_why(why, "no memory cgroup of its own to take (EPH_ENFORCE=job)");
	return -ENOENT;
}

int
cgroup_attach(struct cgroup *cg, pid_t pid)
{
	char num[32];
	int rc;

	if (cg->adopted) {
		/* the command's peak from here: what the agent's preparation used goes (v1, where
		 * the file may be written) */
		if (cg->kind == CGROUP_V1)
			(void)cgroup_file_write(cg->path, "memory.max_usage_in_bytes", "0");
		return 0; /* a child of the agent: in it already */
	}

	snprintf(num, sizeof(num), "%d", (int)pid);
	if ((rc = cgroup_file_write(cg->path, "cgroup.procs", num)) < 0)
		return rc;
	if (cg->freezer != NULL && cgroup_file_write(cg->freezer, "cgroup.procs", num) < 0) {
		/* without the freezer we still kill by looping */
		rmdir(cg->freezer);
		free(cg->freezer);
		cg->freezer = NULL;
	}
	return 0;
}

int
cgroup_usage(struct cgroup *cg, uint64_t *bytes)
{
	int rc = cg_read_u64(cg->path,
	                     cg->kind == CGROUP_V2 ? "memory.current" : "memory.usage_in_bytes",
	                     bytes);

	if (rc == 0 && *bytes > cg->max_seen)
		cg->max_seen = *bytes;
	return rc;
}

void
cgroup_peak(struct cgroup *cg, uint64_t *bytes, const char **method)
{
	uint64_t v;

	if (cg->kind == CGROUP_V1 && cg_read_u64(cg->path, "memory.max_usage_in_bytes", &v) == 0) {
		*bytes = v;
		*method = cg->adopted ? "cgroup1 memory.max_usage_in_bytes of the job's cgroup"
		                      : "cgroup1 memory.max_usage_in_bytes";
		return;
	}
	if (cg->kind == CGROUP_V2 && cg->has_peak &&
	    cg_read_u64(cg->path, "memory.peak", &v) == 0) {
		*bytes = v;
		*method = cg->adopted ? "cgroup2 memory.peak of the job's cgroup"
		                      : "cgroup2 memory.peak";
		return;
	}
	/* no peak file: the largest sample (the command has ended, so a reading now would be
	 * what it left charged, not its peak) */
	*bytes = cg->max_seen;
	*method = cg->kind == CGROUP_V2 ? "cgroup2 max of memory.current samples"
	                                : "cgroup1 max of memory.usage_in_bytes samples";
}

uint64_t
cgroup_oom_kills(struct cgroup *cg)
{
	uint64_t n = cg->kind == CGROUP_V2
	                     ? cg_read_key(cg->path, "memory.events", "oom_kill")
	                     : cg_read_key(cg->path, "memory.oom_control", "oom_kill");

	return n > cg->oom_before ? n - cg->oom_before : 0;
}

/* Calls FN for each pid in DIR/cgroup.procs; returns how many. */
static size_t
procs_foreach(const char *dir, int sig)
{
	char *path = xasprintf("%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	size_t n = 0;
	int pid;

	free(path);
	if (f == NULL)
		return 0;
	while (fscanf(f, "%d", &pid) == 1) {
		if (sig != 0 && pid > 0)
			kill(pid, sig);
		n++;
	}
	fclose(f);
	return n;
}

size_t
cgroup_nprocs(struct cgroup *cg)
{
	return procs_foreach(cg->path, 0);
}

size_t
cgroup_signal(struct cgroup *cg, int sig)
{
	return procs_foreach(cg->path, sig);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
cgroup_kill_all(struct cgroup *cg, void (*reap)(void *), void *arg)
{
	for (int round = 0; round < 500; round++) {
		if (reap != NULL)
			reap(arg);
		if (cgroup_nprocs(cg) == 0)
			return 0;
		if (cg->kind == CGROUP_V2 && cgroup_file_exists(cg->path, "cgroup.kill")) {
			(void)cgroup_file_write(cg->path, "cgroup.kill", "1");
		} else if (cg->freezer != NULL && round % 5 == 0) {
			char st[64] = "";

			(void)cgroup_file_write(cg->freezer, "freezer.state", "FROZEN");
			for (int i = 0; i < 50; i++) {
				if (cgroup_file_read(cg->freezer, "freezer.state", st, sizeof(st)) <
				            0 ||
				    strncmp(st, "FROZEN", 6) == 0)
					break;
				sleep_ms(2);
			}
			(void)procs_foreach(cg->path, SIGKILL);
			(void)cgroup_file_write(cg->freezer, "freezer.state", "THAWED");
		} else {
			(void)procs_foreach(cg->path, SIGKILL);
		}
		sleep_ms(10);
	}
	return cgroup_nprocs(cg) == 0 ? 0 : -EBUSY;
}

static int
rmdir_wait(const char *path)
{
	/* a killed process leaves its cgroup a moment after it is reaped */
	for (int i = 0; i < 200; i++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		sleep_ms(5);
	}
	return -EBUSY;
}

int
cgroup_destroy(struct cgroup *cg)
{
	int rc = 0;

	if (cg == NULL)
		return 0;
	if (cg->path != NULL && !cg->adopted)
		rc = rmdir_wait(cg->path);
	/* the freezer's failure is said too: its directories were seen left behind */
	if (cg->freezer != NULL) {
		int frc = rmdir_wait(cg->freezer);

		if (rc == 0)
			rc = frc;
	}
	free(cg->path);
	free(cg->freezer);
	memset(cg, 0, sizeof(*cg));
	return rc;
}
