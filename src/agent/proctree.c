/* src/agent/proctree.c: a process tree from /proc. */
#include "agent/proctree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/xalloc.h"

struct pinfo {
	pid_t pid, ppid;
	char state;
	uint64_t rss_pages;
	int mark; /* 0 unknown, 1 descendant, -1 not */
};

static int
read_stat(pid_t pid, struct pinfo *pi)
{
	char path[64], data[1024];
	const char *p;
	ssize_t n;
	int fd, ppid;
	unsigned long long rss;
	char st;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	data[n] = '\0';
	if ((p = strrchr(data, ')')) == NULL)
		return -EINVAL;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
	 * cutime cstime priority nice threads itrealvalue starttime vsize rss */
	if (sscanf(p + 1,
	           " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
	           "%*d %*u %*u %llu",
	           &st, &ppid, &rss) != 3)
		return -EINVAL;
	pi->pid = pid;
	pi->ppid = ppid;
	pi->state = st;
	pi->rss_pages = rss;
	pi->mark = 0;
	return 0;
}

static int
by_pid(const void *x, const void *y)
{
	const struct pinfo *a = x, *b = y;

	return (a->pid > b->pid) - (a->pid < b->pid);
}

/* V is sorted by pid. */
static struct pinfo *
find(struct pinfo *v, size_t n, pid_t pid)
{
	struct pinfo key = { .pid = pid };

	return bsearch(&key, v, n, sizeof(*v), by_pid);
}

static int
mark(struct pinfo *v, size_t n, struct pinfo *p, pid_t root, int depth)
{
	struct pinfo *par;

	if (p->mark != 0)
		return p->mark;
	if (p->ppid == root)
		return p->mark = 1;
	if (p->ppid <= 1 || depth > 4096 || (par = find(v, n, p->ppid)) == NULL)
		return p->mark = -1;
	return p->mark = mark(v, n, par, root, depth + 1);
}

/* The "Pss:" of /proc/PID/smaps_rollup in bytes; -errno if it cannot be read (no such file
 * before Linux 4.14, the process gone, no permission). */
static int
read_pss(pid_t pid, uint64_t *bytes)
{
	char path[64], data[4096];
	const char *p;
	unsigned long long kib;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, data, sizeof(data) - 1);
	if (n < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	close(fd);
	data[n] = '\0';
	if ((p = strstr(data, "\nPss:")) == NULL || sscanf(p + 5, "%llu kB", &kib) != 1)
		return -ENODATA;
	*bytes = (uint64_t)kib * 1024;
	return 0;
}

/* What process PID holds, as PSS; its RSS (an upper bound) where PSS cannot be read. A process
 * whose address space is already gone (exiting: the kernel answers ESRCH, or an empty file; or
 * gone with its /proc directory) holds nothing: counting the RSS its stat showed a moment
 * before would count pages shared after fork once per exiting child (seen: three forked
 * children exiting at once took a 150 MiB tree past a 400 MiB limit). */
static uint64_t
pss_or_rss(pid_t pid, uint64_t rss)
{
	char path[64];
	uint64_t p;
	int rc = read_pss(pid, &p);

	if (rc == 0)
		return p;
	if (rc == -ESRCH || rc == -ENODATA)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (rc == -ENOENT && access(path, F_OK) < 0)
		return 0;
	return rss; /* no smaps_rollup (before Linux 4.14), or no permission */
}

int
proctree_scan(pid_t root, bool pss, struct proctree *t)
{
	DIR *d = opendir("/proc");
	struct pinfo *v = NULL;
	size_t n = 0, cap = 0, tcap = 0;
	struct dirent *de;
	long page = sysconf(_SC_PAGESIZE);

	memset(t, 0, sizeof(*t));
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end != '\0' || pid <= 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		if (read_stat((pid_t)pid, &v[n]) == 0)
			n++;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), by_pid);
	for (size_t i = 0; i < n; i++) {
		uint64_t rss = v[i].rss_pages * (uint64_t)page;

		if (mark(v, n, &v[i], root, 0) != 1 || v[i].state == 'Z' || v[i].state == 'X')
			continue;
		if (t->n == tcap) {
			tcap = tcap ? tcap * 2 : 16;
			t->pids = xreallocarray(t->pids, tcap, sizeof(pid_t));
		}
		t->pids[t->n++] = v[i].pid;
		t->rss += rss;
		if (pss)
			t->pss += pss_or_rss(v[i].pid, rss);
	}
	free(v);
	return 0;
}

void
proctree_free(struct proctree *t)
{
	if (t == NULL)
		return;
	free(t->pids);
	memset(t, 0, sizeof(*t));
}

size_t
proctree_signal(pid_t root, pid_t pgid, int sig)
{
	struct proctree t;
	size_t n;

	if (pgid > 0)
		kill(-pgid, sig);
	if (proctree_scan(root, false, &t) < 0)
		return 0;
	for (size_t i = 0; i < t.n; i++)
		kill(t.pids[i], sig);
	n = t.n;
	proctree_free(&t);
	return n;
}
