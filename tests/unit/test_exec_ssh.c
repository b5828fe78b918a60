/* tests/unit/test_exec_ssh.c: the ssh executor's placement, without a network: a run goes to
 * the host it fits most tightly, waits when none has the room, counts the executor's
 * default_memory when it says none, gives its place back when it ends; settings applied again
 * at a reload keep what the hosts hold. The runs are never provisioned: placement is all that
 * reserve and release do. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <uv.h>

#include "conf/conf.h"
#include "exec/exec.h"
#include "tmpfx.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define MiB (UINT64_C(1) << 20)
#define KEY " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOr1n0Vh0Xq2vEw4Qf3pZ0eWc9b6k1m2n3o4p5q6r7s8\n"

struct fx {
	char *dir;
	uv_loop_t loop;
	struct conf *conf;
	struct executor *ex;
};

static void
put(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	free(p);
}

/* The jobs file of a pool whose hosts have the memory HOSTS says ("512MiB, 1GiB"), in FX's
 * directory, loaded into FX->conf. */
static void
load(struct fx *fx, const char *hosts_mem, const char *extra)
{
	struct buf b;
	struct diag d;
	char *mem = xstrdup(hosts_mem), *save, *m;
	int n = 0, rc;

	buf_init(&b, 1 << 16);
	assert_int_equal(buf_printf(&b,
	                            "source: {repo: /srv/jobs.git}\n"
	                            "executors:\n  pool:\n    type: ssh\n"
	                            "    known_hosts: known_hosts\n%s    hosts:\n",
	                            extra),
	                 0);
	for (m = strtok_r(mem, ",", &save); m != NULL; m = strtok_r(NULL, ",", &save))
		assert_int_equal(
		        buf_printf(&b, "      - {host: eph@10.0.0.%d, memory: %s}\n", ++n, m), 0);
	assert_int_equal(buf_printf(&b, "jobs:\n  a: {schedule: '@daily', run: 'true', executor: "
	                                "pool, memory: 64MiB}\n"),
	                 0);
	free(mem);
	diag_init(&d);
	conf_free(fx->conf);
	fx->conf = NULL;
	rc = conf_load_mem("t.yaml", fx->dir, b.data, b.len, &fx->conf, &d);
	if (rc < 0)
		diag_print(&d, stderr);
	assert_int_equal(rc, 0);
	diag_free(&d);
	buf_free(&b);
}

static int
setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof(*fx));
	struct buf kh;

	fx->dir = tmpfx_dir(tmpfx_name());
	buf_init(&kh, 1 << 16);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(buf_printf(&kh, "10.0.0.%d%s", i, KEY), 0);
	put(fx->dir, "known_hosts", kh.data);
	buf_free(&kh);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	exec_executor_free(fx->ex);
	assert_int_equal(uv_run(&fx->loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	conf_free(fx->conf);
	tmpfx_remove(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

static void
make(struct fx *fx, const char *hosts_mem, const char *extra)
{
	struct diag d;

	load(fx, hosts_mem, extra);
	diag_init(&d);
	fx->ex = exec_executor_new(&fx->loop, NULL, fx->dir, "0123456789abcdef", fx->conf,
	                           conf_executor_find(fx->conf, "pool"), NULL, NULL, &d);
	if (fx->ex == NULL)
		diag_print(&d, stderr);
	assert_non_null(fx->ex);
	diag_free(&d);
}

static void
closed(struct exec_run *r, void *arg)
{
	(void)arg;
	exec_run_release(r);
}

/* A run admitted with MEMORY: reserved on its host (returned: the handle's host, as the run
 * would write it, is not needed: the backend's host is read through a handle-less reattach
 * below). */
static struct exec_run *
admit(struct fx *fx, uint64_t memory)
{
	struct exec_hooks h = { NULL, NULL, closed, NULL };
	struct exec_run *r = xcalloc(1, sizeof(*r));

	exec_run_init(r, fx->ex, 1, fx->dir, NULL, &h);
	fx->ex->ops->reserve(fx->ex, r, memory);
	return r;
}

/* Ends R: its place is given back, its backend freed (no op was ever in flight). */
static void
end(struct fx *fx, struct exec_run *r, uint64_t memory)
{
	fx->ex->ops->release(fx->ex, r, memory);
	r->finished = true;
	fx->ex->ops->teardown(r); /* frees the backend: hooks.closed releases R */
	free(r);
}

static void
best_fit_then_wait(void **state)
{
	struct fx *fx = *state;
	struct exec_run *a, *b, *c;

	make(fx, "1GiB,512MiB", ""); /* the big one listed first */
	/* 400 MiB fits both: the tighter one (first fit would take the 1 GiB one, and the
	 * 700 MiB run below would wait) */
	assert_true(fx->ex->ops->fits(fx->ex, 400 * MiB));
	a = admit(fx, 400 * MiB);
	/* 700 MiB: only the 1 GiB host */
	assert_true(fx->ex->ops->fits(fx->ex, 700 * MiB));
	b = admit(fx, 700 * MiB);
	/* now 112 MiB and 324 MiB free: 200 MiB fits the second, 400 MiB none */
	assert_false(fx->ex->ops->fits(fx->ex, 400 * MiB));
	assert_true(fx->ex->ops->fits(fx->ex, 200 * MiB));
	c = admit(fx, 200 * MiB);
	assert_false(fx->ex->ops->fits(fx->ex, 200 * MiB));
	assert_true(fx->ex->ops->fits(fx->ex, 100 * MiB));
	/* the 700 MiB run ends: 824 MiB free on the big host */
	end(fx, b, 700 * MiB);
	assert_true(fx->ex->ops->fits(fx->ex, 800 * MiB));
	assert_false(fx->ex->ops->fits(fx->ex, 900 * MiB));
	end(fx, a, 400 * MiB);
	end(fx, c, 200 * MiB);
	assert_true(fx->ex->ops->fits(fx->ex, 1024 * MiB));
	assert_false(fx->ex->ops->fits(fx->ex, 1025 * MiB));
	assert_int_equal(fx->ex->nruns, 0);
}

static void
a_run_without_memory_counts_default_memory(void **state)
{
	struct fx *fx = *state;
	struct exec_run *a;

	make(fx, "1GiB", "    default_memory: 768MiB\n");
	assert_int_equal(fx->ex->max_wait, 3600);
	a = admit(fx, 0);
	/* 256 MiB left */
	assert_false(fx->ex->ops->fits(fx->ex, 0));
	assert_false(fx->ex->ops->fits(fx->ex, 300 * MiB));
	assert_true(fx->ex->ops->fits(fx->ex, 256 * MiB));
	end(fx, a, 0);
	assert_true(fx->ex->ops->fits(fx->ex, 0));
}

static void
a_reload_keeps_what_the_hosts_hold(void **state)
{
	struct fx *fx = *state;
	struct exec_run *a;
	struct diag d;

	make(fx, "1GiB", "    max_wait: 5m\n");
	a = admit(fx, 800 * MiB);
	/* the host grows, a second one comes: the 800 MiB placed stay counted on the first */
	load(fx, "2GiB,512MiB", "");
	diag_init(&d);
	assert_int_equal(
	        exec_executor_configure(fx->ex, fx->conf, conf_executor_find(fx->conf, "pool"), &d),
	        0);
	diag_free(&d);
	assert_int_equal(fx->ex->max_wait, 3600);
	assert_true(fx->ex->ops->fits(fx->ex, 1200 * MiB));
	assert_false(fx->ex->ops->fits(fx->ex, 1300 * MiB));
	end(fx, a, 800 * MiB);
	assert_true(fx->ex->ops->fits(fx->ex, 2048 * MiB));
	/* a host gone from the file takes no new run */
	load(fx, "512MiB", "");
	diag_init(&d);
	assert_int_equal(
	        exec_executor_configure(fx->ex, fx->conf, conf_executor_find(fx->conf, "pool"), &d),
	        0);
	diag_free(&d);
	assert_false(fx->ex->ops->fits(fx->ex, 600 * MiB));
	assert_true(fx->ex->ops->fits(fx->ex, 512 * MiB));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(best_fit_then_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(a_run_without_memory_counts_default_memory, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(a_reload_keeps_what_the_hosts_hold, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
