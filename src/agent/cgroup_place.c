/* src/agent/cgroup_place.c: where a run's memory cgroup goes (see cgroup_place.h). */
#include "agent/cgroup_place.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/xalloc.h"

/* ---- small file helpers */

int
cgroup_file_write(const char *dir, const char *file, const char *val)
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

int
cgroup_file_read(const char *dir, const char *file, char *out, size_t n)
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

bool
cgroup_file_exists(const char *dir, const char *file)
{
	char *path = xasprintf("%s/%s", dir, file);
	bool ok = access(path, F_OK) == 0;

	free(path);
	return ok;
}

bool
cgroup_has_word(const char *list, const char *word, char sep)
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

void
cgroup_why(struct buf *why, const char *s)
{
	if (why->len > 0 && buf_puts(why, "; ") < 0)
		return;
	if (buf_puts(why, s) < 0)
		return;
}

void
cgroup_whyf(struct buf *why, const char *what, const char *path, int rc)
{
	char *s = xasprintf("%s %s: %s", what, path, strerror(-rc));

	cgroup_why(why, s);
	free(s);
}

struct cgroup_sys
cgroup_sys_self(void)
{
	return (struct cgroup_sys){ .mountinfo = "/proc/self/mountinfo",
		                    .self_cgroup = "/proc/self/cgroup",
		                    .pid = getpid() };
}

/* ---- the mounts and the agent's own cgroup */

/* The mount point of the first cgroup2 mount (KIND 2) or of the v1 hierarchy with
 * controller CTL (KIND 1), from MOUNTINFO; *ROOT gets the path of the hierarchy the mount
 * shows at its top ("/" unless it is a bind of a subtree, as in some containers). Caller
 * frees both; NULL if none. */
static char *
find_mount(const char *mountinfo, enum cgroup_kind kind, const char *ctl, char **root)
{
	FILE *f = fopen(mountinfo, "re");
	char *line = NULL, *found = NULL;
	size_t cap = 0;

	if (f == NULL)
		return NULL;
	while (found == NULL && getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *fstype, *super, *mnt, *mroot, *save = NULL;

		if (sep == NULL)
			continue;
		*sep = '\0';
		fstype = strtok_r(sep + 3, " ", &save);
		(void)strtok_r(NULL, " ", &save); /* source */
		super = strtok_r(NULL, " \n", &save);
		if (fstype == NULL)
			continue;
		(void)strtok_r(line, " ", &save); /* id */
		(void)strtok_r(NULL, " ", &save); /* parent */
		(void)strtok_r(NULL, " ", &save); /* maj:min */
		mroot = strtok_r(NULL, " ", &save);
		mnt = strtok_r(NULL, " ", &save);
		/* octal escapes (a space in a path): not a mount we would use */
		if (mnt == NULL || strchr(mnt, '\\') != NULL || strchr(mroot, '\\') != NULL)
			continue;
		if ((kind == CGROUP_V2 && strcmp(fstype, "cgroup2") == 0) ||
		    (kind == CGROUP_V1 && strcmp(fstype, "cgroup") == 0 && super != NULL &&
		     cgroup_has_word(super, ctl, ','))) {
			found = xstrdup(mnt);
			*root = xstrdup(mroot);
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* The agent's own cgroup of KIND (v1: of controller CTL) from SELF_CGROUP ("ID:CTLS:PATH"
 * lines; v2's is "0::PATH"). Caller frees; NULL if there is no such line. */
static char *
own_path(const char *self_cgroup, enum cgroup_kind kind, const char *ctl)
{
	FILE *f = fopen(self_cgroup, "re");
	char *line = NULL, *found = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL)
		return NULL;
	while (found == NULL && (n = getline(&line, &cap, f)) > 0) {
		char *c1 = strchr(line, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;

		if (c2 == NULL)
			continue;
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		*c2 = '\0';
		if (kind == CGROUP_V2 ? strncmp(line, "0:", 2) == 0 && c1 + 1 == c2
		                      : cgroup_has_word(c1 + 1, ctl, ','))
			found = xstrdup(c2 + 1);
	}
	free(line);
	fclose(f);
	return found;
}

/* The directory of cgroup PATH under MOUNT, whose top is the hierarchy's MROOT; NULL if the
 * mount does not show it. Caller frees. */
static char *
own_dir(const char *mount, const char *mroot, const char *path)
{
	size_t rl = strcmp(mroot, "/") == 0 ? 0 : strlen(mroot);

	if (path[0] != '/' || strncmp(path, mroot, rl) != 0 ||
	    (path[rl] != '/' && path[rl] != '\0'))
		return NULL;
	path += rl;
	while (*path == '/')
		path++;
	return *path == '\0' ? xstrdup(mount) : xasprintf("%s/%s", mount, path);
}

/* Whether the agent may create cgroups in DIR and move processes through FILES (NULL-ended). */
static int
writable(const char *dir, const char *const *files)
{
	if (access(dir, W_OK) < 0)
		return -errno;
	for (; *files != NULL; files++) {
		char *p = xasprintf("%s/%s", dir, *files);
		int rc = access(p, W_OK) < 0 ? -errno : 0;

		free(p);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The processes of DIR/cgroup.procs: *SELF whether PID is one, the count of the others. */
static int
procs_of(const char *dir, pid_t pid, bool *self, size_t *others)
{
	char *path = xasprintf("%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	int p;

	free(path);
	*self = false;
	*others = 0;
	if (f == NULL)
		return -errno;
	while (fscanf(f, "%d", &p) == 1) {
		if (p == (int)pid)
			*self = true;
		else
			(*others)++;
	}
	fclose(f);
	return 0;
}

/* ---- the places */

static int
own_v2(const struct cgroup_sys *sys, const char *dir, struct cgroup_place *pl, struct buf *why)
{
	static const char *const files[] = { "cgroup.procs", "cgroup.subtree_control", NULL };
	char b[4096], *what;
	size_t others;
	bool self;
	int rc;

	/* the root cgroup has no cgroup.type (and the top-level place is its); a cgroup
	 * namespace's root has one, and is the own cgroup of what runs at the top of that
	 * namespace (a container's) */
	rc = cgroup_file_read(dir, "cgroup.type", b, sizeof(b));
	if (rc == -ENOENT)
		return -ENOENT;
	if (rc < 0) {
		cgroup_whyf(why, "reading cgroup.type of", dir, rc);
		return rc;
	}
	if (strcmp(b, "domain\n") != 0 && strcmp(b, "domain") != 0) {
		cgroup_whyf(why, "own cgroup (not a domain cgroup)", dir, -EINVAL);
		return -EINVAL;
	}
	if ((rc = writable(dir, files)) < 0) {
		cgroup_whyf(why, "own cgroup", dir, rc);
		return rc;
	}
	if ((rc = cgroup_file_read(dir, "cgroup.controllers", b, sizeof(b))) < 0 ||
	    !cgroup_has_word(b, "memory", ' ')) {
		cgroup_whyf(why, "no memory controller delegated to own cgroup", dir,
		            rc < 0 ? rc : -ENOENT);
		return rc < 0 ? rc : -ENOENT;
	}
	if ((rc = procs_of(dir, sys->pid, &self, &others)) < 0) {
		cgroup_whyf(why, "reading cgroup.procs of", dir, rc);
		return rc;
	}
	if (others > 0) {
		/* the processes are another's (an ssh session's sshd and shell): never moved */
		what = xasprintf("own cgroup %s holds %zu other process%s, so no controller can be "
		                 "enabled below it",
		                 dir, others, others == 1 ? "" : "es");
		cgroup_why(why, what);
		free(what);
		return -EBUSY;
	}
	pl->kind = CGROUP_V2;
	pl->own = true;
	pl->parent = xstrdup(dir);
	pl->base = xstrdup(dir);
	/* a cgroup cannot both hold the agent and enable +memory for its children */
	pl->leaf = self ? xasprintf("%s/agent", dir) : NULL;
	return 0;
}

int
cgroup_place_own(const struct cgroup_sys *sys, enum cgroup_kind kind, const char *controller,
                 struct cgroup_place *pl, struct buf *why)
{
	static const char *const files_v1[] = { "cgroup.procs", NULL };
	char *mroot = NULL, *mount, *path = NULL, *dir = NULL;
	int rc;

	memset(pl, 0, sizeof(*pl));
	mount = find_mount(sys->mountinfo, kind, controller, &mroot);
	if (mount == NULL)
		return -ENOENT; /* cgroup_place_top says so */
	if ((path = own_path(sys->self_cgroup, kind, controller)) == NULL) {
		cgroup_whyf(why, kind == CGROUP_V2 ? "no cgroup2 line in" : "no cgroup1 line in",
		            sys->self_cgroup, -ENOENT);
		rc = -ENOENT;
		goto out;
	}
	if ((dir = own_dir(mount, mroot, path)) == NULL) {
		cgroup_whyf(why, "own cgroup (not under the mount)", path, -ENOENT);
		rc = -ENOENT;
		goto out;
	}
	if (kind == CGROUP_V2) {
		rc = own_v2(sys, dir, pl, why);
		goto out;
	}
	/* v1: the mount's top is the root, or all a container sees: the top-level place */
	if (strcmp(dir, mount) == 0) {
		rc = -ENOENT;
		goto out;
	}
	if ((rc = writable(dir, files_v1)) < 0) {
		cgroup_whyf(why, "own cgroup", dir, rc);
		goto out;
	}
	pl->kind = CGROUP_V1;
	pl->own = true;
	pl->parent = dir;
	dir = NULL;
	rc = 0;
out:
	free(dir);
	free(path);
	free(mount);
	free(mroot);
	return rc;
}

char *
cgroup_own_dir(const struct cgroup_sys *sys, enum cgroup_kind kind, const char *controller)
{
	char *mroot = NULL, *mount, *path, *dir = NULL;

	if ((mount = find_mount(sys->mountinfo, kind, controller, &mroot)) == NULL)
		return NULL;
	if ((path = own_path(sys->self_cgroup, kind, controller)) != NULL)
		dir = own_dir(mount, mroot, path);
	if (dir != NULL && strcmp(dir, mount) == 0) {
		free(dir);
		dir = NULL;
	}
	free(path);
	free(mount);
	free(mroot);
	return dir;
}

int
cgroup_place_top(const struct cgroup_sys *sys, enum cgroup_kind kind, const char *controller,
                 struct cgroup_place *pl, struct buf *why)
{
	char *mroot = NULL, *mount, ctl[4096];
	int rc;

	memset(pl, 0, sizeof(*pl));
	if ((mount = find_mount(sys->mountinfo, kind, controller, &mroot)) == NULL) {
		char *s = kind == CGROUP_V2 ? xstrdup("no cgroup2 mount")
		                            : xasprintf("no cgroup1 %s hierarchy", controller);

		cgroup_why(why, s);
		free(s);
		return -ENOENT;
	}
	free(mroot);
	if (kind == CGROUP_V2) {
		rc = cgroup_file_read(mount, "cgroup.controllers", ctl, sizeof(ctl));
		if (rc < 0 || !cgroup_has_word(ctl, "memory", ' ')) {
			cgroup_whyf(why, "no memory controller in", mount, rc < 0 ? rc : -ENOENT);
			free(mount);
			return -ENOENT;
		}
	}
	pl->kind = kind;
	pl->parent = xasprintf("%s/ephemeron", mount);
	pl->base = mount;
	return 0;
}

void
cgroup_place_free(struct cgroup_place *pl)
{
	free(pl->parent);
	free(pl->base);
	free(pl->leaf);
	memset(pl, 0, sizeof(*pl));
}
