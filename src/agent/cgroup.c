/* src/agent/cgroup.c: a run's memory cgroup, v2 or v1. */
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

/* ---- small file helpers */

static int
cg_write(const char *dir, const char *file, const char *val)
{
	char *path = xasprintf("%s/%s", dir, file);
	int fd, rc = 0;
	size_t n = strlen(val);
	ssize_t w;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
	/* a control file takes a value in one write(2) or not at all */
	if ((w = write(fd, val, n)) < 0)
		rc = -errno;
	else if ((size_t)w != n)
		rc = -EIO;
	close(fd);
	return rc;
}

/* Reads DIR/FILE into OUT (NUL-terminated, truncated to N-1 bytes). */
static int
cg_read(const char *dir, const char *file, char *out, size_t n)
{
	char *path = xasprintf("%s/%s", dir, file);
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
	r = read(fd, out, n - 1);
	if (r < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	close(fd);
	out[r] = '\0';
	return 0;
}

static int
cg_read_u64(const char *dir, const char *file, uint64_t *v)
{
	char b[64];
	int rc = cg_read(dir, file, b, sizeof(b));

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

	if (cg_read(dir, file, b, sizeof(b)) < 0)
		return 0;
	for (p = b; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return strtoull(p + kl + 1, NULL, 10);
	return 0;
}

static bool
cg_exists(const char *dir, const char *file)
{
	char *path = xasprintf("%s/%s", dir, file);
	bool ok = access(path, F_OK) == 0;

	free(path);
	return ok;
}

static bool
has_word(const char *list, const char *word, char sep)
{
	size_t wl = strlen(word);

	for (const char *p = list; p != NULL && *p != '\0';) {
		const char *e = strchr(p, sep);
		size_t l = e != NULL ? (size_t)(e - p) : strlen(p);

		while (l > 0 && (p[l - 1] == '\n' || p[l - 1] == ' '))
			l--;
		if (l == wl && strncmp(p, word, wl) == 0)
			return true;
		p = e != NULL ? e + 1 : NULL;
	}
	return false;
}

/* The mount point of the first cgroup2 mount (KIND 2) or of the v1 hierarchy with
 * controller OPT (KIND 1), from /proc/self/mountinfo; caller frees; NULL if none. */
static char *
find_mount(int kind, const char *opt)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *found = NULL;
	size_t cap = 0;

	if (f == NULL)
		return NULL;
	while (found == NULL && getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *fstype, *super, *mnt, *save = NULL;
		int i;

		if (sep == NULL)
			continue;
		*sep = '\0';
		fstype = strtok_r(sep + 3, " ", &save);
		(void)strtok_r(NULL, " ", &save); /* source */
		super = strtok_r(NULL, " \n", &save);
		if (fstype == NULL)
			continue;
		mnt = strtok_r(line, " ", &save);
		for (i = 0; i < 4 && mnt != NULL; i++)
			mnt = strtok_r(NULL, " ", &save); /* id parent maj:min root MOUNT */
		if (mnt == NULL || strchr(mnt, '\\') != NULL)
			continue;
		if (kind == 2 && strcmp(fstype, "cgroup2") == 0)
			found = xstrdup(mnt);
		else if (kind == 1 && strcmp(fstype, "cgroup") == 0 && super != NULL &&
		         has_word(super, opt, ','))
			found = xstrdup(mnt);
	}
	free(line);
	fclose(f);
	return found;
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

/* Appends to WHY; past its cap the rest is dropped. */
static void
whys(struct buf *why, const char *s)
{
	if (why->len > 0 && buf_puts(why, "; ") < 0)
		return;
	if (buf_puts(why, s) < 0)
		return;
}

static void
whyf(struct buf *why, const char *what, const char *path, int rc)
{
	char *s = xasprintf("%s %s: %s", what, path, strerror(-rc));

	whys(why, s);
	free(s);
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
		whyf(why, "creating a cgroup in", parent, rc);
		return rc;
	}
	if (!cg_exists(cg->path, file)) {
		what = xasprintf("no %s in", file);
		whyf(why, what, cg->path, -ENOENT);
		free(what);
		return -ENOENT;
	}
	if (limit == 0)
		return 0;
	snprintf(num, CG_NUM, "%" PRIu64, limit);
	if ((rc = cg_write(cg->path, file, num)) < 0) {
		what = xasprintf("setting %s of", file);
		whyf(why, what, cg->path, rc);
		free(what);
	}
	return rc;
}

/* ---- v2 */

/* Enables +memory in subtree_control from MOUNT down to PARENT (inclusive). */
static int
v2_enable(const char *mount, const char *parent, struct buf *why)
{
	size_t ml = strlen(mount);
	char *p = xstrdup(parent);
	int rc = 0;

	for (size_t i = ml; rc == 0; i++) {
		if (p[i] == '/' || p[i] == '\0') {
			char c = p[i], ctl[4096];

			p[i] = '\0';
			if (cg_read(p, "cgroup.subtree_control", ctl, sizeof(ctl)) < 0 ||
			    !has_word(ctl, "memory", ' ')) {
				rc = cg_write(p, "cgroup.subtree_control", "+memory");
				if (rc < 0)
					whyf(why, "enabling memory in", p, rc);
			}
			p[i] = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

static int
v2_create(struct cgroup *cg, const char *root, const char *name, uint64_t limit, struct buf *why)
{
	char *mount = find_mount(2, NULL), *parent, ctl[4096], num[CG_NUM];
	int rc;

	if (mount == NULL) {
		whys(why, "no cgroup2 mount");
		return -ENOENT;
	}
	parent = root != NULL ? xstrdup(root) : xasprintf("%s/ephemeron", mount);
	if (strncmp(parent, mount, strlen(mount)) != 0) {
		/* a root elsewhere: a cgroup2 mount we did not see (e.g. bind) */
		free(mount);
		mount = xstrdup(parent);
	}
	rc = cg_read(mount, "cgroup.controllers", ctl, sizeof(ctl));
	if (rc < 0 || !has_word(ctl, "memory", ' ')) {
		whyf(why, "no memory controller in", mount, rc < 0 ? rc : -ENOENT);
		rc = -ENOENT;
		goto out;
	}
	if ((rc = mkdir_ok(parent)) < 0) {
		whyf(why, "creating", parent, rc);
		goto out;
	}
	if ((rc = v2_enable(mount, parent, why)) < 0)
		goto out;
	if ((rc = make_limited(cg, parent, name, "memory.max", limit, num, why)) < 0)
		goto out;
	if (cg_exists(cg->path, "memory.swap.max") &&
	    (rc = cg_write(cg->path, "memory.swap.max", "0")) < 0) {
		whyf(why, "setting memory.swap.max of", cg->path, rc);
		goto out;
	}
	if ((rc = cg_write(cg->path, "memory.oom.group", "1")) < 0) {
		whyf(why, "setting memory.oom.group of", cg->path, rc);
		goto out;
	}
	cg->kind = CGROUP_V2;
	cg->has_peak = cg_exists(cg->path, "memory.peak");
	cg->oom_before = cg_read_key(cg->path, "memory.events", "oom_kill");
	rc = 0;
out:
	if (rc < 0)
		abandon(cg);
	free(parent);
	free(mount);
	return rc;
}

/* ---- v1 */

static int
v1_create(struct cgroup *cg, const char *root, const char *name, uint64_t limit, struct buf *why)
{
	char *mount = NULL, *parent, num[CG_NUM], *fmount;
	int rc;

	if (root != NULL) {
		parent = xstrdup(root);
	} else {
		if ((mount = find_mount(1, "memory")) == NULL) {
			whys(why, "no cgroup1 memory hierarchy");
			return -ENOENT;
		}
		parent = xasprintf("%s/ephemeron", mount);
	}
	if ((rc = mkdir_ok(parent)) < 0) {
		whyf(why, "creating", parent, rc);
		goto out;
	}
	if ((rc = make_limited(cg, parent, name, "memory.limit_in_bytes", limit, num, why)) < 0)
		goto out;
	if (limit > 0) {
		/* memory+swap = memory: swap is no headroom */
		if (cg_exists(cg->path, "memory.memsw.limit_in_bytes") &&
		    (rc = cg_write(cg->path, "memory.memsw.limit_in_bytes", num)) < 0) {
			whyf(why, "setting memory.memsw.limit_in_bytes of", cg->path, rc);
			goto out;
		}
	}
	(void)cg_write(cg->path, "memory.swappiness", "0");
	cg->kind = CGROUP_V1;
	cg->oom_before = cg_read_key(cg->path, "memory.oom_control", "oom_kill");
	/* the freezer makes killing everything race-free; without it we loop */
	if ((fmount = find_mount(1, "freezer")) != NULL) {
		char *fparent = xasprintf("%s/ephemeron", fmount);
		int frc;

		/* named as the memory cgroup turned out to be, where it can */
		if (mkdir_ok(fparent) == 0)
			cg->freezer = make_run_dir(fparent, strrchr(cg->path, '/') + 1, &frc);
		free(fparent);
		free(fmount);
	}
	rc = 0;
out:
	if (rc < 0)
		abandon(cg);
	free(parent);
	free(mount);
	return rc;
}

int
cgroup_create(struct cgroup *cg, const char *name, uint64_t limit, struct buf *why)
{
	const char *root = getenv("EPH_CGROUP_ROOT");
	struct statfs sf;

	memset(cg, 0, sizeof(*cg));
	if (root != NULL && *root != '\0') {
		if (statfs(root, &sf) < 0) {
			int rc = -errno;

			whyf(why, "EPH_CGROUP_ROOT", root, rc);
			return rc;
		}
		if (sf.f_type == CGROUP2_MAGIC)
			return v2_create(cg, root, name, limit, why);
		if (sf.f_type == CGROUP1_MAGIC)
			return v1_create(cg, root, name, limit, why);
		whyf(why, "EPH_CGROUP_ROOT", root, -ENOTDIR);
		return -ENOTDIR;
	}
	if (v2_create(cg, NULL, name, limit, why) == 0)
		return 0;
	return v1_create(cg, NULL, name, limit, why);
}

int
cgroup_attach(struct cgroup *cg, pid_t pid)
{
	char num[32];
	int rc;

	snprintf(num, sizeof(num), "%d", (int)pid);
	if ((rc = cg_write(cg->path, "cgroup.procs", num)) < 0)
		return rc;
	if (cg->freezer != NULL && cg_write(cg->freezer, "cgroup.procs", num) < 0) {
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
		*method = "cgroup1 memory.max_usage_in_bytes";
		return;
	}
	if (cg->kind == CGROUP_V2 && cg->has_peak &&
	    cg_read_u64(cg->path, "memory.peak", &v) == 0) {
		*bytes = v;
		*method = "cgroup2 memory.peak";
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
		if (cg->kind == CGROUP_V2 && cg_exists(cg->path, "cgroup.kill")) {
			(void)cg_write(cg->path, "cgroup.kill", "1");
		} else if (cg->freezer != NULL && round % 5 == 0) {
			char st[64] = "";

			(void)cg_write(cg->freezer, "freezer.state", "FROZEN");
			for (int i = 0; i < 50; i++) {
				if (cg_read(cg->freezer, "freezer.state", st, sizeof(st)) < 0 ||
				    strncmp(st, "FROZEN", 6) == 0)
					break;
				sleep_ms(2);
			}
			(void)procs_foreach(cg->path, SIGKILL);
			(void)cg_write(cg->freezer, "freezer.state", "THAWED");
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
	if (cg->path != NULL)
		rc = rmdir_wait(cg->path);
	if (cg->freezer != NULL)
		(void)rmdir_wait(cg->freezer);
	free(cg->path);
	free(cg->freezer);
	memset(cg, 0, sizeof(*cg));
	return rc;
}
