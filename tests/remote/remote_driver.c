/* tests/remote/remote_driver.c: one operation of src/remote/ from argv, on a libuv loop, its
 * result printed as one JSON object (tests/e2e/test_remote.py, bench/remote.py). Built with
 * -Dtests=true only; not installed.
 *
 *   remote_driver [OPTIONS] HOST run COMMAND      (--stdin TEXT: bytes on its stdin)
 *   remote_driver [OPTIONS] HOST ship LOCAL DIR
 *   remote_driver [OPTIONS] HOST fetch PATH OFFSET [MAX]
 *   remote_driver [OPTIONS] HOST clock
 *   remote_driver [OPTIONS] HOST ctl check|exit
 *   remote_driver [OPTIONS] HOST known             (offline: known_hosts has HOST?)
 *   remote_driver [OPTIONS] HOST argv COMMAND      (prints ssh's argv, runs nothing)
 * OPTIONS: --known-hosts F --identity F --control-dir D --connect-timeout S --alive S
 *          --timeout-ms MS --cancel-ms MS --repeat N (run N times, one after the other) */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "remote/remote.h"
#include "remote/remote_op.h"
#include "util/diag.h"

struct drv {
	struct remote_req q;
	const char *op;
	char **args;
	int nargs;
	int repeat, done;
	const char *in;
	int64_t cancel_ms;
	uv_timer_t cancel;
	struct remote_op *cur;
	pid_t canceled_pid; /* the ssh that remote_op_cancel ended */
	json_t *runs;
	int rc;
};

static int drv_start(struct drv *d);

static json_t *
drv_result(const struct remote_result *r, pid_t pid)
{
	json_t *o = json_object();

	json_object_set_new(o, "fail", json_string(remote_fail_name(r->fail)));
	json_object_set_new(o, "status", json_integer(r->status));
	json_object_set_new(o, "signal", json_integer(r->signal));
	json_object_set_new(o, "why", r->why != NULL ? json_string(r->why) : json_null());
	json_object_set_new(o, "fingerprint",
	                    r->fingerprint != NULL ? json_string(r->fingerprint) : json_null());
	json_object_set_new(o, "out", json_stringn(r->out, r->out_len));
	json_object_set_new(o, "out_truncated", json_boolean(r->out_truncated));
	json_object_set_new(o, "err", json_string(r->err));
	json_object_set_new(o, "elapsed_ms", json_real(r->elapsed_ms));
	json_object_set_new(o, "pid", json_integer(pid)); /* --cancel-ms: the ssh it ended */
	if (r->remote_path != NULL) {
		json_object_set_new(o, "remote_path", json_string(r->remote_path));
		json_object_set_new(o, "shipped", json_boolean(r->shipped));
	}
	json_object_set_new(o, "offset", json_integer(r->offset));
	json_object_set_new(o, "missing", json_boolean(r->missing));
	json_object_set_new(o, "clock_offset", json_real(r->clock_offset));
	json_object_set_new(o, "clock_bound", json_real(r->clock_bound));
	return o;
}

static void
drv_cb(struct remote_op *op, const struct remote_result *r, void *data)
{
	struct drv *d = data;

	(void)op;
	d->cur = NULL;
	json_array_append_new(d->runs, drv_result(r, d->canceled_pid));
	if (r->fail != REMOTE_OK)
		d->rc = 1;
	if (++d->done < d->repeat && d->rc == 0) {
		if (drv_start(d) < 0)
			d->rc = 1;
		return;
	}
	if (d->cancel_ms > 0)
		uv_close((uv_handle_t *)&d->cancel, NULL);
}

static void
drv_cancel(uv_timer_t *t)
{
	struct drv *d = t->data;

	if (d->cur != NULL) {
		d->canceled_pid = remote_op_pid(d->cur);
		remote_op_cancel(d->cur);
	}
}

static int
drv_start(struct drv *d)
{
	const char *op = d->op;

	if (strcmp(op, "run") == 0 && d->nargs == 1)
		return remote_run(&d->q, d->args[0], d->in, d->in != NULL ? strlen(d->in) : 0, 0,
		                  &d->cur);
	if (strcmp(op, "ship") == 0 && d->nargs == 2)
		return remote_ship(&d->q, d->args[0], d->args[1], &d->cur);
	if (strcmp(op, "fetch") == 0 && (d->nargs == 2 || d->nargs == 3))
		return remote_fetch(&d->q, d->args[0], strtoll(d->args[1], NULL, 10),
		                    d->nargs == 3 ? strtoull(d->args[2], NULL, 10) : 0, &d->cur);
	if (strcmp(op, "clock") == 0 && d->nargs == 0)
		return remote_clock(&d->q, &d->cur);
	if (strcmp(op, "ctl") == 0 && d->nargs == 1)
		return remote_ctl(&d->q, d->args[0], &d->cur);
	fprintf(stderr, "remote_driver: bad operation or arguments\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "known-hosts", required_argument, NULL, 'k' },
		{ "identity", required_argument, NULL, 'i' },
		{ "control-dir", required_argument, NULL, 'c' },
		{ "connect-timeout", required_argument, NULL, 't' },
		{ "alive", required_argument, NULL, 'a' },
		{ "timeout-ms", required_argument, NULL, 'T' },
		{ "cancel-ms", required_argument, NULL, 'C' },
		{ "stdin", required_argument, NULL, 's' },
		{ "repeat", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_ssh s = { 0 };
	struct remote_host h;
	struct diag dg;
	struct drv d;
	uv_loop_t loop;
	int c, rc;

	memset(&d, 0, sizeof(d));
	d.repeat = 1;
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			s.known_hosts = optarg;
			break;
		case 'i':
			s.identity_file = optarg;
			break;
		case 'c':
			s.control_dir = optarg;
			break;
		case 't':
			s.connect_timeout = atoi(optarg);
			break;
		case 'a':
			s.alive_interval = atoi(optarg);
			s.alive_count = 2;
			break;
		case 'T':
			d.q.timeout_ms = atoll(optarg);
			break;
		case 'C':
			d.cancel_ms = atoll(optarg);
			break;
		case 's':
			d.in = optarg;
			break;
		case 'r':
			d.repeat = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind < 2) {
		fprintf(stderr, "usage: remote_driver [OPTIONS] HOST OP [ARGS...]\n");
		return 2;
	}
	diag_init(&dg);
	if (remote_host_parse(argv[optind], (struct diag_pos){ 0 }, &h, &dg) < 0) {
		diag_print(&dg, stderr);
		diag_free(&dg);
		return 2;
	}
	d.op = argv[optind + 1];
	d.args = argv + optind + 2;
	d.nargs = argc - optind - 2;
	if (strcmp(d.op, "known") == 0) {
		json_t *o = json_object();
		char *msg;

		rc = remote_check_host(&s, &h, (struct diag_pos){ 0 }, &dg);
		msg = diag_joined(&dg, "");
		json_object_set_new(o, "known", json_boolean(rc == 0));
		json_object_set_new(o, "message", json_string(msg));
		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
		free(msg);
		remote_host_clear(&h);
		diag_free(&dg);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(d.op, "argv") == 0 && d.nargs == 1) {
		char **v = remote_argv(&s, &h, NULL, d.args[0]);
		json_t *a = json_array();

		for (char **p = v; *p != NULL; p++)
			json_array_append_new(a, json_string(*p));
		json_dumpf(a, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(a);
		remote_argv_free(v);
		remote_host_clear(&h);
		diag_free(&dg);
		return 0;
	}
	if (remote_check_files(&s, (struct diag_pos){ 0 }, &dg) < 0) {
		diag_print(&dg, stderr);
		remote_host_clear(&h);
		diag_free(&dg);
		return 2;
	}
	uv_loop_init(&loop);
	d.q.loop = &loop;
	d.q.ssh = &s;
	d.q.host = &h;
	d.q.cb = drv_cb;
	d.q.data = &d;
	d.runs = json_array();
	rc = drv_start(&d);
	if (rc < 0) {
		fprintf(stderr, "remote_driver: %s\n", uv_strerror(rc));
		d.rc = 2;
	} else if (d.cancel_ms > 0) {
		uv_timer_init(&loop, &d.cancel);
		d.cancel.data = &d;
		uv_timer_start(&d.cancel, drv_cancel, (uint64_t)d.cancel_ms, 0);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0) {
		fprintf(stderr, "remote_driver: handles left open\n");
		d.rc = 3;
	}
	if (json_array_size(d.runs) == 1)
		json_dumpf(json_array_get(d.runs, 0), stdout, JSON_COMPACT);
	else
		json_dumpf(d.runs, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(d.runs);
	remote_host_clear(&h);
	diag_free(&dg);
	return d.rc;
}
