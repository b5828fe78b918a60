/* src/daemon/control.c: the daemon's control socket STATE/eph.sock: its clients, one JSON
 * request a line, and the replies to run, cancel and status. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "conf/conf.h"
#include "daemon/ctl.h"
#include "daemon/daemon_int.h"
#include "daemon/dlog.h"
#include "daemon/evheap.h"
#include "sched/tz.h"
#include "store/store.h"
#include "util/attr.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/xalloc.h"

struct dwrite {
	uv_write_t req;
	char *data;
};

/* --- the control socket --------------------------------------------------------------- */

static void
dm_write_cb(uv_write_t *req, int status)
{
	struct dwrite *w = container_of(req, struct dwrite, req);

	(void)status;
	free(w->data);
	free(w);
}

static void
dm_client_closed(uv_handle_t *h)
{
	struct dclient *c = h->data;

	buf_free(&c->in);
	free(c);
}

void
dm_client_close(struct dclient *c)
{
	struct daemon *dm = c->dm;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		dm->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->pipe, dm_client_closed);
}

static void
dm_reply(struct dclient *c, json_t *o)
{
	struct dwrite *w;
	char *text = json_dumps(o, JSON_COMPACT);
	uv_buf_t b;

	json_decref(o);
	if (text == NULL)
		return;
	w = xcalloc(1, sizeof(*w));
	w->data = xasprintf("%s\n", text);
	free(text);
	b = uv_buf_init(w->data, (unsigned)strlen(w->data));
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, dm_write_cb) < 0) {
		free(w->data);
		free(w);
	}
}

static json_t *dm_error(const char *fmt, ...) EPH_PRINTF(1, 2);

static json_t *
dm_error(const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;
	json_t *o;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	free(msg);
	return o;
}

static json_t *
dm_status_job(struct daemon *dm, const struct djob *j)
{
	const struct conf_job *cj = j->cj;
	json_t *o = json_object(), *live = json_array();
	struct store_run *runs = NULL;
	size_t n = 0;
	const char *state = "idle";
	char iso[TZ_ISO8601_MAX];

	json_object_set_new(o, "job", json_string(cj->name));
	json_object_set_new(o, "schedule", json_string(cj->schedule));
	json_object_set_new(o, "timezone", json_string(tz_name(cj->tz)));
	if (evheap_contains(&j->ev)) {
		tz_format_iso8601(cj->tz, j->next, iso, sizeof(iso));
		json_object_set_new(o, "next", json_string(iso));
	} else {
		json_object_set_new(o, "next", json_null());
	}
	for (struct drun *dr = dm->runs; dr != NULL; dr = dr->next) {
		if (strcmp(dr->job, cj->name) != 0)
			continue;
		json_array_append_new(live,
		                      json_pack("{s:I, s:s}", "run", (json_int_t)dr->id, "state",
		                                dr->phase == DR_STARTED ? "running" : "waiting"));
		if (dr->phase == DR_STARTED)
			state = "running";
		else if (strcmp(state, "idle") == 0)
			state = "waiting";
	}
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "live", live);
	json_object_set_new(o, "last", json_null());
	if (store_runs_list(dm->store, cj->name, 20, &runs, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			const struct store_run *r = &runs[i];

			if (!store_state_terminal(r->state))
				continue;
			json_object_set_new(o, "last",
			                    json_pack("{s:I, s:s, s:f, s:f, s:I, s:s?}", "run",
			                              (json_int_t)r->id, "state",
			                              store_state_name(r->state), "started_at",
			                              r->started_at, "ended_at", r->ended_at,
			                              "peak_bytes", (json_int_t)r->peak_bytes,
			                              "reason", r->reason));
			break;
		}
		store_runs_free(runs, n);
	}
	return o;
}

static json_t *
dm_handle(struct daemon *dm, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));

	if (cmd == NULL)
		return dm_error("%s", "no \"cmd\" in the request");
	if (strcmp(cmd, "run") == 0) {
		const char *name = json_string_value(json_object_get(req, "job"));
		const struct conf_job *cj = name != NULL ? conf_job_find(dm->conf, name) : NULL;
		int64_t id;

		if (name == NULL)
			return dm_error("%s", "which job?");
		if (cj == NULL)
			return dm_error("no job \"%s\" in the daemon's configuration", name);
		id = dm_create(dm, cj, STORE_MANUAL, clock_real_ms() / 1000, 1, 0, false);
		if (id == 0)
			return dm_error("could not create a run of %s (see the daemon's log)",
			                name);
		dlog(DLOG_INFO, id, name, "manual run requested");
		dm_kick(dm);
		return json_pack("{s:b, s:I}", "ok", 1, "run", (json_int_t)id);
	}
	if (strcmp(cmd, "cancel") == 0) {
		json_t *jid = json_object_get(req, "run");
		int64_t id = json_is_integer(jid) ? json_integer_value(jid) : 0;
		char idtext[32];

		snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
		for (struct drun *dr = dm->runs; dr != NULL; dr = dr->next) {
			if (dr->id != id)
				continue;
			if (dm_cancel_run(dm, dr, "cancelled by eph cancel") < 0)
				return dm_error("run %s could not be cancelled", idtext);
			return json_pack("{s:b, s:I}", "ok", 1, "run", (json_int_t)id);
		}
		return dm_error("run %s is not live in this daemon", idtext);
	}
	if (strcmp(cmd, "status") == 0) {
		json_t *jobs = json_array();

		for (size_t i = 0; i < dm->njobs; i++)
			json_array_append_new(jobs, dm_status_job(dm, &dm->jobs[i]));
		return json_pack("{s:b, s:i, s:s, s:o}", "ok", 1, "pid", (int)getpid(), "conf",
		                 dm->conf_path, "jobs", jobs);
	}
	return dm_error("unknown command \"%s\"", cmd);
}

static void
dm_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	b->base = xmalloc(suggested);
	b->len = suggested;
}

static void
dm_client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct dclient *c = s->data;
	char *nl;

	if (nread < 0) {
		free(b->base);
		dm_client_close(c);
		return;
	}
	if (nread > 0 && buf_append(&c->in, b->base, (size_t)nread) < 0) {
		free(b->base);
		dm_reply(c, dm_error("%s", "request too long"));
		dm_client_close(c);
		return;
	}
	free(b->base);
	while (c->in.len > 0 && (nl = memchr(c->in.data, '\n', c->in.len)) != NULL) {
		size_t k = (size_t)(nl - c->in.data);
		json_error_t jerr;
		json_t *req = json_loadb(c->in.data, k, 0, &jerr);

		if (req == NULL || !json_is_object(req))
			dm_reply(c, dm_error("%s", "not a JSON object"));
		else
			dm_reply(c, dm_handle(c->dm, req));
		json_decref(req);
		memmove(c->in.data, c->in.data + k + 1, c->in.len - k - 1);
		c->in.len -= k + 1;
	}
}

static void
dm_connection_cb(uv_stream_t *srv, int status)
{
	struct daemon *dm = srv->data;
	struct dclient *c;

	if (status < 0)
		return;
	c = xcalloc(1, sizeof(*c));
	c->dm = dm;
	buf_init(&c->in, BUF_MAX_JSON);
	uv_pipe_init(&dm->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = dm->clients;
	if (dm->clients != NULL)
		dm->clients->prev = c;
	dm->clients = c;
	if (uv_accept(srv, (uv_stream_t *)&c->pipe) < 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, dm_alloc_cb, dm_client_read_cb) < 0)
		dm_client_close(c);
}

int
dm_listen(struct daemon *dm)
{
	mode_t old;
	int rc;

	dm->sock_path = ctl_socket_path(dm->o->state_dir);
	if (dm->sock_path == NULL) {
		fprintf(stderr,
		        "eph daemon: the state directory's path %s is too long for a socket\n",
		        dm->o->state_dir);
		return -ENAMETOOLONG;
	}
	if (unlink(dm->sock_path) < 0 && errno != ENOENT) {
		rc = -errno;
		fprintf(stderr, "eph daemon: cannot remove %s: %s\n", dm->sock_path, strerror(-rc));
		return rc;
	}
	uv_pipe_init(&dm->loop, &dm->ctl, 0);
	dm->ctl.data = dm;
	dm->ctl_open = true;
	old = umask(0077);
	rc = uv_pipe_bind(&dm->ctl, dm->sock_path);
	umask(old);
	if (rc == 0 && chmod(dm->sock_path, 0600) < 0)
		rc = -errno;
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&dm->ctl, 16, dm_connection_cb);
	if (rc < 0)
		fprintf(stderr, "eph daemon: cannot listen on %s: %s\n", dm->sock_path,
		        uv_strerror(rc));
	return rc;
}
