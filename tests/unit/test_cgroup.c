/* tests/unit/test_cgroup.c: where a run's cgroup goes, decided against a fake cgroup tree (real
 * directories and files: a mountinfo, a /proc/self/cgroup, a cgroup2 or v1 hierarchy), and the
 * peak of a cgroup2 without memory.peak (kernels before 5.19). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/cgroup.h"
#include "agent/cgroup_place.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define PID    4242 /* the agent, as the fake cgroup.procs lists it */
#define NOBODY 65534

struct fx {
	char *dir;       /* the test's directory */
	char *mountinfo; /* DIR/mountinfo */
	char *selfcg;    /* DIR/cgroup: /proc/self/cgroup */
	char *cg;        /* DIR/cg: the cgroup2 mount, or the v1 memory one */
	struct cgroup_sys sys;
	struct buf why;
};

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/tmp/eph-test-cgroup-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(chmod(tmpl, 0755), 0); /* a non-root child reads it too */
	f->dir = xstrdup(tmpl);
	f->mountinfo = xasprintf("%s/mountinfo", f->dir);
	f->selfcg = xasprintf("%s/cgroup", f->dir);
	f->cg = xasprintf("%s/cg", f->dir);
	f->sys = (struct cgroup_sys){ .mountinfo = f->mountinfo,
		                      .self_cgroup = f->selfcg,
		                      .pid = PID };
	buf_init(&f->why, BUF_MAX_MSG);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	assert_int_equal(system(cmd), 0);
	free(cmd);
	buf_free(&f->why);
	free(f->mountinfo);
	free(f->selfcg);
	free(f->cg);
	free(f->dir);
	free(f);
	return 0;
}

/* Writes TEXT to DIR/REL, making the directories on the way. */
static void
put(const char *dir, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", dir, rel), *cmd;
	FILE *fp;

	cmd = xasprintf("mkdir -p \"$(dirname '%s')\"", path);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	free(path);
}

/* A cgroup2 mount at f->cg whose top is the hierarchy's MROOT, with the memory controller. */
static void
v2_mount(struct fx *f, const char *mroot)
{
	char *line = xasprintf("24 1 0:21 / /proc rw - proc proc rw\n"
	                       "30 25 0:26 %s %s rw,nosuid,nodev,noexec - cgroup2 cgroup2 "
	                       "rw,nsdelegate,memory_recursiveprot\n",
	                       mroot, f->cg);
	FILE *fp = fopen(f->mountinfo, "w");

	assert_non_null(fp);
	fputs(line, fp);
	assert_int_equal(fclose(fp), 0);
	free(line);
	put(f->cg, "cgroup.controllers", "cpuset cpu io memory pids\n");
	put(f->cg, "cgroup.subtree_control", "cpu memory pids\n");
	put(f->cg, "cgroup.procs", "1\n");
}

/* A non-root cgroup REL of the fake cgroup2 tree: CONTROLLERS, PROCS. */
static void
v2_cgroup(struct fx *f, const char *rel, const char *controllers, const char *procs)
{
	char *d = xasprintf("%s/%s", f->cg, rel);

	put(d, "cgroup.type", "domain\n");
	put(d, "cgroup.controllers", controllers);
	put(d, "cgroup.subtree_control", "");
	put(d, "cgroup.procs", procs);
	free(d);
}

static void
self_cgroup(struct fx *f, const char *text)
{
	put(f->dir, "cgroup", text);
}

static char *
at(struct fx *f, const char *rel)
{
	return xasprintf("%s/%s", f->cg, rel);
}

static void
assert_str_at(struct fx *f, const char *got, const char *rel)
{
	char *want = rel != NULL ? at(f, rel) : xstrdup(f->cg);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(want);
}

static bool
why_has(struct fx *f, const char *needle)
{
	return strstr(buf_cstr(&f->why), needle) != NULL;
}

/* ---- cgroup v2 */

static void
v2_a_delegated_cgroup_that_holds_only_the_agent_is_the_place_after_a_leaf(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	v2_mount(f, "/");
	v2_cgroup(f, "system.slice", "memory pids\n", "");
	v2_cgroup(f, "system.slice/eph.service", "memory pids\n", "4242\n");
	self_cgroup(f, "0::/system.slice/eph.service\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), 0);
	assert_int_equal(pl.kind, CGROUP_V2);
	assert_true(pl.own);
	assert_str_at(f, pl.parent, "system.slice/eph.service");
	assert_str_at(f, pl.base, "system.slice/eph.service");
	/* the agent moves out first: no controller is enabled below a cgroup with processes */
	assert_str_at(f, pl.leaf, "system.slice/eph.service/agent");
	assert_int_equal(f->why.len, 0);
	cgroup_place_free(&pl);
}

static void
v2_a_cgroup_with_other_processes_is_refused_and_the_top_level_is_next(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	/* an ssh session's scope: sshd and the login shell are there with the agent */
	v2_mount(f, "/");
	v2_cgroup(f, "user.slice/user-0.slice/session-3.scope", "memory pids\n",
	          "901\n4242\n902\n");
	self_cgroup(f, "0::/user.slice/user-0.slice/session-3.scope\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -EBUSY);
	assert_true(why_has(f, "session-3.scope holds 2 other processes"));
	assert_null(pl.parent);
	assert_int_equal(cgroup_place_top(&f->sys, CGROUP_V2, NULL, &pl, &f->why), 0);
	assert_false(pl.own);
	assert_null(pl.leaf);
	assert_str_at(f, pl.parent, "ephemeron");
	assert_str_at(f, pl.base, NULL);
	cgroup_place_free(&pl);
}

static void
v2_the_root_cgroup_leaves_the_place_to_the_top_level_silently(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	v2_mount(f, "/");
	self_cgroup(f, "0::/\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -ENOENT);
	assert_int_equal(f->why.len, 0);
}

static void
v2_a_namespace_root_is_an_own_cgroup(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	/* a container's cgroup namespace: "/" is the container's cgroup, which has a
	 * cgroup.type (the real root has none), and the agent is its only process */
	v2_mount(f, "/");
	put(f->cg, "cgroup.type", "domain\n");
	put(f->cg, "cgroup.procs", "4242\n");
	put(f->cg, "cgroup.subtree_control", "");
	self_cgroup(f, "0::/\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), 0);
	assert_true(pl.own);
	assert_str_at(f, pl.parent, NULL);
	assert_str_at(f, pl.leaf, "agent");
	cgroup_place_free(&pl);
}

static void
v2_no_memory_controller_delegated_is_refused(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	v2_mount(f, "/");
	v2_cgroup(f, "a.service", "pids\n", "4242\n");
	self_cgroup(f, "0::/a.service\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -ENOENT);
	assert_true(why_has(f, "no memory controller delegated to own cgroup"));
}

static void
v2_a_threaded_cgroup_is_refused(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;
	char *d;

	v2_mount(f, "/");
	v2_cgroup(f, "t", "memory\n", "4242\n");
	d = at(f, "t");
	put(d, "cgroup.type", "threaded\n");
	free(d);
	self_cgroup(f, "0::/t\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -EINVAL);
	assert_true(why_has(f, "not a domain cgroup"));
}

static void
v2_a_mount_of_a_subtree_maps_the_own_path(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	/* the mount shows the hierarchy from /machine.slice/c1.scope down */
	v2_mount(f, "/machine.slice/c1.scope");
	v2_cgroup(f, "job", "memory\n", "4242\n");
	self_cgroup(f, "0::/machine.slice/c1.scope/job\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), 0);
	assert_str_at(f, pl.parent, "job");
	cgroup_place_free(&pl);

	/* a cgroup the mount does not show */
	self_cgroup(f, "0::/machine.slice/c2.scope\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -ENOENT);
	assert_true(why_has(f, "not under the mount"));
}

static void
v2_a_mount_without_memory_has_no_top_level_place(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	v2_mount(f, "/");
	put(f->cg, "cgroup.controllers", "cpu pids\n");
	assert_int_equal(cgroup_place_top(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -ENOENT);
	assert_true(why_has(f, "no memory controller in"));

	/* no cgroup2 mount at all */
	put(f->dir, "mountinfo", "24 1 0:21 / /proc rw - proc proc rw\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -ENOENT);
	assert_int_equal(cgroup_place_top(&f->sys, CGROUP_V2, NULL, &pl, &f->why), -ENOENT);
	assert_true(why_has(f, "no cgroup2 mount"));
}

/* cgroup_place_own as user NOBODY in a child: its result. */
static int
own_as_nobody(struct fx *f)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct cgroup_place pl;
		int rc;

		if (setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
			_exit(100);
		rc = cgroup_place_own(&f->sys, CGROUP_V2, NULL, &pl, &f->why);
		cgroup_place_free(&pl);
		_exit(rc == 0 ? 0 : -rc);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return -WEXITSTATUS(st);
}

static void
v2_a_cgroup_is_the_place_for_a_user_only_when_delegated_to_it(void **state)
{
	struct fx *f = *state;
	char *d;

	if (geteuid() != 0)
		skip(); /* the test changes users */
	v2_mount(f, "/");
	v2_cgroup(f, "user.slice/user-65534.slice/eph.service", "memory\n", "4242\n");
	self_cgroup(f, "0::/user.slice/user-65534.slice/eph.service\n");
	/* root's: not writable for the user */
	assert_int_equal(own_as_nobody(f), -EACCES);
	/* delegated as systemd does it: the directory and its delegation files chowned */
	d = at(f, "user.slice/user-65534.slice/eph.service");
	assert_int_equal(chown(d, NOBODY, NOBODY), 0);
	assert_int_equal(own_as_nobody(f), -EACCES); /* cgroup.procs is still root's */
	for (const char *const *n =
	             (const char *const[]){ "cgroup.procs", "cgroup.subtree_control", NULL };
	     *n != NULL; n++) {
		char *p = xasprintf("%s/%s", d, *n);

		assert_int_equal(chown(p, NOBODY, NOBODY), 0);
		free(p);
	}
	assert_int_equal(own_as_nobody(f), 0);
	free(d);
}

/* ---- cgroup v1 */

static void
v1_mounts(struct fx *f)
{
	char *text = xasprintf("24 1 0:21 / /proc rw - proc proc rw\n"
	                       "35 25 0:30 / %s rw,nosuid - cgroup cgroup rw,memory\n"
	                       "36 25 0:31 / %s/fz rw,nosuid - cgroup cgroup rw,freezer\n"
	                       "37 25 0:32 / %s/u rw - cgroup2 cgroup2 rw\n",
	                       f->cg, f->dir, f->dir);

	put(f->dir, "mountinfo", text);
	free(text);
	put(f->cg, "cgroup.procs", "1\n");
	put(f->cg, "memory.limit_in_bytes", "9223372036854771712\n");
}

static void
v1_a_host_cgroup_is_the_place_and_the_root_is_not(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;
	char *fz;

	v1_mounts(f);
	put(f->cg, "host1/cgroup.procs", "4242\n");
	self_cgroup(f, "6:freezer:/\n4:memory:/host1\n0::/\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V1, "memory", &pl, &f->why), 0);
	assert_int_equal(pl.kind, CGROUP_V1);
	assert_true(pl.own);
	/* the run's cgroup right in it, as a sibling of whatever else is there */
	assert_str_at(f, pl.parent, "host1");
	assert_null(pl.leaf); /* v1 has no rule against processes in inner cgroups */
	cgroup_place_free(&pl);

	/* the freezer's own cgroup is the root: the top-level place */
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V1, "freezer", &pl, &f->why), -ENOENT);
	assert_int_equal(f->why.len, 0);
	assert_int_equal(cgroup_place_top(&f->sys, CGROUP_V1, "freezer", &pl, &f->why), 0);
	fz = xasprintf("%s/fz/ephemeron", f->dir);
	assert_string_equal(pl.parent, fz);
	free(fz);
	cgroup_place_free(&pl);

	self_cgroup(f, "4:memory:/\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V1, "memory", &pl, &f->why), -ENOENT);
	assert_int_equal(cgroup_place_top(&f->sys, CGROUP_V1, "memory", &pl, &f->why), 0);
	assert_str_at(f, pl.parent, "ephemeron");
	cgroup_place_free(&pl);
}

static void
v1_a_controller_line_with_several_controllers_is_found(void **state)
{
	struct fx *f = *state;
	struct cgroup_place pl;

	v1_mounts(f);
	put(f->cg, "a/b/cgroup.procs", "");
	self_cgroup(f, "5:cpu,cpuacct:/x\n4:blkio,memory:/a/b\n");
	assert_int_equal(cgroup_place_own(&f->sys, CGROUP_V1, "memory", &pl, &f->why), 0);
	assert_str_at(f, pl.parent, "a/b");
	cgroup_place_free(&pl);

	/* a cgroup that is not there (removed under us): refused, with why */
	self_cgroup(f, "4:memory:/gone\n");
	assert_true(cgroup_place_own(&f->sys, CGROUP_V1, "memory", &pl, &f->why) < 0);
	assert_true(why_has(f, "gone"));
}

/* ---- the peak without memory.peak */

static void
peak_without_memory_peak_is_the_largest_sample(void **state)
{
	struct fx *f = *state;
	struct cgroup cg = { 0 };
	const char *method = NULL;
	uint64_t v, peak = 0;
	static const char *const samples[] = { "10485760\n", "52428800\n", "20971520\n" };

	put(f->cg, "run-1-2/memory.current", "0\n");
	put(f->cg, "run-1-2/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\n");
	cg.path = at(f, "run-1-2");
	cgroup_v2_probe(&cg);
	assert_int_equal(cg.kind, CGROUP_V2);
	assert_false(cg.has_peak); /* a kernel before 5.19 */
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		put(cg.path, "memory.current", samples[i]);
		assert_int_equal(cgroup_usage(&cg, &v), 0);
	}
	assert_int_equal(v, 20971520);
	cgroup_peak(&cg, &peak, &method);
	assert_int_equal(peak, 52428800); /* not the last reading: what the command left */
	assert_string_equal(method, "cgroup2 max of memory.current samples");
	/* OOM kills count from when it was set up */
	assert_int_equal(cgroup_oom_kills(&cg), 0);
	put(cg.path, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 3\n");
	assert_int_equal(cgroup_oom_kills(&cg), 1);
	free(cg.path);
}

static void
peak_with_memory_peak_is_the_kernels(void **state)
{
	struct fx *f = *state;
	struct cgroup cg = { 0 };
	const char *method = NULL;
	uint64_t v, peak = 0;

	put(f->cg, "run-1-3/memory.current", "1048576\n");
	put(f->cg, "run-1-3/memory.peak", "104857600\n");
	cg.path = at(f, "run-1-3");
	cgroup_v2_probe(&cg);
	assert_true(cg.has_peak);
	assert_int_equal(cgroup_usage(&cg, &v), 0);
	cgroup_peak(&cg, &peak, &method);
	assert_int_equal(peak, 104857600);
	assert_string_equal(method, "cgroup2 memory.peak");
	free(cg.path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		        v2_a_delegated_cgroup_that_holds_only_the_agent_is_the_place_after_a_leaf,
		        setup, teardown),
		cmocka_unit_test_setup_teardown(
		        v2_a_cgroup_with_other_processes_is_refused_and_the_top_level_is_next,
		        setup, teardown),
		cmocka_unit_test_setup_teardown(
		        v2_the_root_cgroup_leaves_the_place_to_the_top_level_silently, setup,
		        teardown),
		cmocka_unit_test_setup_teardown(v2_a_namespace_root_is_an_own_cgroup, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(v2_no_memory_controller_delegated_is_refused, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(v2_a_threaded_cgroup_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(v2_a_mount_of_a_subtree_maps_the_own_path, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(v2_a_mount_without_memory_has_no_top_level_place,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(
		        v2_a_cgroup_is_the_place_for_a_user_only_when_delegated_to_it, setup,
		        teardown),
		cmocka_unit_test_setup_teardown(v1_a_host_cgroup_is_the_place_and_the_root_is_not,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(
		        v1_a_controller_line_with_several_controllers_is_found, setup, teardown),
		cmocka_unit_test_setup_teardown(peak_without_memory_peak_is_the_largest_sample,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(peak_with_memory_peak_is_the_kernels, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
