/* src/exec/exec.c: the life of a run around its executor: follow output.log, record the
 * result exactly once, settle what a crash left behind. */
#include "exec/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/conf.h"
#include "rundir/rundir.h"
#include "rundir/runphase.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define EXEC_TICK_MS     1000
#define EXEC_READ_CHUNK  (64 * 1024)
#define EXEC_MAX_PENDING (1u << 20) /* a partial line of output.log held back */
#define EXEC_MAX_SAMPLES (1u << 20) /* 12 days of one a second; older ones are thinned */

const struct exec_ops *
exec_find(const char *name)
{
	static const struct exec_ops *const all[] = { &exec_local_ops, &exec_ssh_ops, &exec_do_ops,
		                                      &exec_slurm_ops };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

static enum store_state
exec_state_of(enum rundir_outcome o)
{
	switch (o) {
	case RUNDIR_SUCCEEDED:
		return STORE_SUCCEEDED;
	case RUNDIR_FAILED:
		return STORE_FAILED;
	case RUNDIR_OOM:
		return STORE_OOM;
	case RUNDIR_TIMEOUT:
		return STORE_TIMEOUT;
	case RUNDIR_KILLED:
		return STORE_KILLED;
	case RUNDIR_CANCELLED:
		return STORE_CANCELLED;
	}
	return STORE_FAILED;
}

struct exec_samples {
	struct store_sample *v;
	size_t n, cap;
	int64_t peak;
	struct runphases phases; /* from the same pass over events.jsonl */
};

static int
exec_sample_cb(const struct rundir_event *e, void *arg)
{
	struct exec_samples *s = arg;

	runphase_event(&s->phases, e);
	if (strcmp(e->ev, "mem") != 0)
		return 0;
	if ((int64_t)e->bytes > s->peak)
		s->peak = (int64_t)e->bytes;
	if (s->n == EXEC_MAX_SAMPLES) {
		/* keep every other sample: the timeline keeps its shape at half the resolution */
		for (size_t i = 0; i < s->n / 2; i++)
			s->v[i] = s->v[2 * i];
		s->n /= 2;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	s->v[s->n++] = (struct store_sample){ e->t, (int64_t)e->bytes };
	return 0;
}

/* exec_record, where a run without a result is recorded in state NORESULT (lost, or
 * cancelled when it was cancelled before its agent could record it); with OWE_MAIL, its mail
 * is left owed to the daemon (store_run_finish_owing_mail). */
static int
exec_record_as(struct store *s, int64_t id, const char *dir, const char *lost_reason,
               enum store_state noresult, bool owe_mail, struct store_run *final)
{
	struct exec_samples samples = { .peak = -1 };
	struct rundir_result res;
	struct store_run r;
	struct diag d;
	char *why = NULL;
	int rc;

	diag_init(&d);
	store_run_init(&r);
	rc = dir != NULL ? rundir_result_read(dir, &res, &d) : -ENOENT;
	if (rc < 0 && lost_reason == NULL)
		goto out;
	if (dir != NULL)
		(void)rundir_events_foreach(dir, 0, exec_sample_cb, &samples, NULL, NULL);
	if (rc == 0) {
		r.state = exec_state_of(res.outcome);
		r.reason = res.reason != NULL ? xstrdup(res.reason) : NULL;
		r.exit_code = res.exit_code;
		r.signal = res.signal;
		r.peak_bytes = (int64_t)res.peak_bytes;
		r.peak_method = res.peak_method != NULL ? xstrdup(res.peak_method) : NULL;
		r.enforced = res.enforced != NULL ? xstrdup(res.enforced) : NULL;
		r.memory_limit = (int64_t)res.memory_limit;
		r.started_at = res.started_at;
		r.ended_at = res.ended_at;
		runphase_result(&samples.phases, &res);
		r.cpu_user = res.cpu_user_seconds;
		r.cpu_system = res.cpu_system_seconds;
		rundir_result_free(&res);
	} else {
		if (rc != -ENOENT && d.n > 0)
			why = diag_format(&d, 0);
		r.state = noresult;
		r.reason =
		        why != NULL ? xasprintf("%s (%s)", lost_reason, why) : xstrdup(lost_reason);
		r.ended_at = rundir_now();
		if (samples.peak >= 0) {
			r.peak_bytes = samples.peak;
			r.peak_method =
			        xstrdup("sampled (largest sample before the agent was lost)");
		}
	}
	for (size_t i = 0; i < samples.phases.n; i++) {
		const struct runphase *p = &samples.phases.v[i];

		store_run_add_phase(&r, p->name, p->started_at, p->ended_at, p->seconds);
	}
	rc = owe_mail ? store_run_finish_owing_mail(s, id, &r, samples.v, samples.n)
	              : store_run_finish(s, id, &r, samples.v, samples.n);
	if (rc == 0 && final != NULL)
		rc = store_run_get(s, id, final);
out:
	free(why);
	free(samples.v);
	runphases_free(&samples.phases);
	store_run_clear(&r);
	diag_free(&d);
	return rc;
}

int
exec_record(struct store *s, int64_t id, const char *dir, const char *lost_reason,
            struct store_run *final)
{
	return exec_record_as(s, id, dir, lost_reason, STORE_LOST, false, final);
}

const struct exec_ops *
exec_of_run(const struct store_run *row)
{
	const struct exec_ops *ops = NULL;
	json_t *h, *t;

	if (row->handle == NULL)
		return &exec_local_ops;
	h = json_loads(row->handle, 0, NULL);
	t = json_object_get(h, "type");
	if (json_is_string(t))
		ops = exec_find(json_string_value(t));
	json_decref(h);
	return ops != NULL ? ops : &exec_local_ops;
}

struct executor *
exec_executor_new(uv_loop_t *loop, struct store *store, const char *state_dir, const char *instance,
                  const struct conf *c, const struct conf_executor *ce, exec_health_fn *health,
                  void *health_arg, struct diag *d)
{
	const struct exec_ops *ops = exec_find(conf_exec_type_name(ce->type));
	struct executor *ex;

	if (ops == NULL) {
		diag_error(d, (struct diag_pos){ 0 }, "executor \"%s\": type %s is not available",
		           ce->name, conf_exec_type_name(ce->type));
		return NULL;
	}
	ex = xcalloc(1, sizeof(*ex));
	ex->ops = ops;
	ex->name = xstrdup(ce->name);
	ex->loop = loop;
	ex->store = store;
	ex->state_dir = xstrdup(state_dir);
	ex->instance = xstrdup(instance != NULL ? instance : "");
	ex->health = health;
	ex->health_arg = health_arg;
	if (exec_executor_configure(ex, c, ce, d) < 0) {
		exec_executor_free(ex);
		return NULL;
	}
	return ex;
}

int
exec_executor_configure(struct executor *ex, const struct conf *c, const struct conf_executor *ce,
                        struct diag *d)
{
	return ex->ops->configure != NULL ? ex->ops->configure(ex, c, ce, d) : 0;
}

void
exec_executor_free(struct executor *ex)
{
	if (ex == NULL)
		return;
	if (ex->ops->destroy != NULL)
		ex->ops->destroy(ex);
	free(ex->name);
	free(ex->state_dir);
	free(ex->instance);
	free(ex);
}

enum exec_found
exec_inspect(const struct store_run *r, char **why)
{
	char *res;
	bool done;

	*why = NULL;
	if (r->run_dir == NULL)
		return EXEC_UNPREPARED;
	/* result.json is the agent's last write (renamed into place): the run is over even
	 * while its agent is still exiting */
	res = xasprintf("%s/%s", r->run_dir, RUNDIR_RESULT);
	done = access(res, F_OK) == 0;
	free(res);
	if (done)
		return EXEC_FINISHED;
	return exec_of_run(r)->inspect(r, why);
}

int
exec_reconcile(struct store *s)
{
	struct store_run *runs = NULL;
	size_t n = 0;
	int settled = 0, rc;

	rc = store_runs_unfinished(s, &runs, &n);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		char *why = NULL;
		enum exec_found f = exec_inspect(&runs[i], &why);

		/* its mail is the daemon's to decide: owed in the same transaction */
		if (f == EXEC_FINISHED || f == EXEC_LOST) {
			rc = exec_record_as(s, runs[i].id, runs[i].run_dir, why, STORE_LOST, true,
			                    NULL);
			if (rc == 0)
				settled++;
		}
		free(why);
	}
	store_runs_free(runs, n);
	return settled;
}

/* --- following a live run ------------------------------------------------------------- */

void
exec_handle_closed(struct exec_run *r)
{
	if (--r->handles_open == 0 && r->hooks.closed != NULL)
		r->hooks.closed(r, r->hooks.arg);
}

static void
exec_uv_closed(uv_handle_t *h)
{
	exec_handle_closed(h->data);
}

static void
exec_read_output(struct exec_run *r)
{
	char *chunk;
	ssize_t got;

	if (r->hooks.output == NULL)
		return;
	if (r->out_fd < 0) {
		char *p = xasprintf("%s/%s", r->dir, RUNDIR_OUTPUT);

		r->out_fd = open(p, O_RDONLY | O_CLOEXEC);
		free(p);
		if (r->out_fd < 0)
			return; /* not there yet */
	}
	chunk = xmalloc(EXEC_READ_CHUNK);
	while ((got = pread(r->out_fd, chunk, EXEC_READ_CHUNK, (off_t)r->out_off)) > 0) {
		const char *nl;

		r->out_off += (uint64_t)got;
		if (buf_append(&r->out_pending, chunk, (size_t)got) < 0) {
			/* a "line" past any the agent writes: hand over what there is */
			r->hooks.output(r, r->out_pending.data, r->out_pending.len, r->hooks.arg);
			buf_reset(&r->out_pending);
			if (buf_append(&r->out_pending, chunk, (size_t)got) < 0)
				abort(); /* EXEC_READ_CHUNK < EXEC_MAX_PENDING */
		}
		nl = memrchr(r->out_pending.data, '\n', r->out_pending.len);
		if (nl != NULL) {
			size_t k = (size_t)(nl - r->out_pending.data) + 1;

			r->hooks.output(r, r->out_pending.data, k, r->hooks.arg);
			memmove(r->out_pending.data, r->out_pending.data + k,
			        r->out_pending.len - k);
			r->out_pending.len -= k;
		}
	}
	free(chunk);
}

static void
exec_close(struct exec_run *r)
{
	if (r->following) {
		r->following = false;
		uv_close((uv_handle_t *)&r->watch, exec_uv_closed);
		uv_close((uv_handle_t *)&r->tick, exec_uv_closed);
	}
	if (r->ops->teardown != NULL)
		r->ops->teardown(r);
	if (r->out_fd >= 0) {
		close(r->out_fd);
		r->out_fd = -1;
	}
}

/* Records R's end: its result.json, or in its absence state NORESULT with reason WHY (lost:
 * the command may have run; failed: the agent never started). */
static void
exec_finish(struct exec_run *r, enum store_state noresult, const char *why)
{
	struct store_run final;
	int rc;

	if (r->finished)
		return;
	r->finished = true;
	r->recorded = true;
	exec_read_output(r);
	if (r->out_pending.len > 0 && r->hooks.output != NULL)
		r->hooks.output(r, r->out_pending.data, r->out_pending.len, r->hooks.arg);
	buf_reset(&r->out_pending);
	store_run_init(&final);
	/* an agent killed by our own cancel before it could write its result was cancelled */
	if (noresult == STORE_LOST && r->cancel_sent)
		noresult = STORE_CANCELLED;
	rc = exec_record_as(r->store, r->id, r->dir, why, noresult, false, &final);
	if (rc == -EALREADY)
		rc = store_run_get(r->store, r->id, &final);
	if (r->hooks.done != NULL)
		r->hooks.done(r, rc == 0 ? &final : NULL, rc, r->hooks.arg);
	store_run_clear(&final);
	exec_close(r);
}

static void exec_pulled(struct exec_run *r, int rc);

/* Asks the executor for R's bytes: the last time once the agent is gone. */
static void
exec_pull(struct exec_run *r)
{
	r->pulling = true;
	r->pull_last = r->gone_why != NULL;
	r->ops->pull(r, r->pull_last, exec_pulled);
}

/* pull's callback: what came is read; after the last one, R is recorded. A pull that failed
 * is not retried here: the tick asks again, and the last one records what is here. */
static void
exec_pulled(struct exec_run *r, int rc)
{
	char *why;

	(void)rc;
	r->pulling = false;
	if (r->finished)
		return;
	exec_read_output(r);
	if (r->gone_why == NULL)
		return;
	if (!r->pull_last) {
		exec_pull(r); /* the agent went while an earlier pull was out */
		return;
	}
	why = r->gone_why;
	r->gone_why = NULL;
	exec_finish(r, STORE_LOST, why);
	free(why);
}

void
exec_agent_gone(struct exec_run *r, int status)
{
	char *why;

	if (r->agent_gone && r->gone_why != NULL)
		return; /* already waiting for its last pull */
	r->agent_gone = true;
	r->agent_status = status;
	if (status < 0)
		why = xasprintf("the agent (pid %d) ended without writing a result",
		                (int)r->agent_pid);
	else if (WIFSIGNALED(status))
		why = xasprintf("the agent was killed by signal %d before writing a result",
		                WTERMSIG(status));
	else
		why = xasprintf("the agent exited with status %d without writing a result",
		                WEXITSTATUS(status));
	if (r->ops->pull != NULL && !r->finished) {
		/* its result is recorded once its last bytes are here */
		r->gone_why = why;
		if (!r->pulling)
			exec_pull(r);
		return;
	}
	exec_finish(r, STORE_LOST, why);
	free(why);
}

void
exec_run_ended(struct exec_run *r, enum store_state state, const char *why)
{
	r->agent_gone = true;
	exec_finish(r, state, why);
}

void
exec_run_lost(struct exec_run *r, const char *why)
{
	r->agent_gone = true;
	exec_finish(r, STORE_LOST, why);
}

static void
exec_watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct exec_run *r = h->data;

	(void)filename;
	(void)events;
	(void)status;
	exec_read_output(r);
}

static void
exec_tick_cb(uv_timer_t *h)
{
	struct exec_run *r = h->data;

	if (r->ops->pull == NULL)
		exec_read_output(r);
	else if (!r->pulling && !r->provisioning && !r->finished)
		exec_pull(r); /* read once it is here (exec_pulled) */
	if (!r->agent_gone && !r->finished && !r->provisioning)
		r->ops->poll(r);
}

int
exec_run_set_handle(struct exec_run *r, const char *handle)
{
	return store_run_set_handle(r->store, r->id, handle);
}

int
exec_run_alive(struct exec_run *r)
{
	if (r->agent_gone)
		return 0;
	return r->ops->alive(r);
}

void
exec_run_init(struct exec_run *r, struct executor *ex, int64_t id, const char *dir,
              const char *handle, const struct exec_hooks *h)
{
	memset(r, 0, sizeof(*r));
	r->loop = ex->loop;
	r->ex = ex;
	r->ops = ex->ops;
	r->store = ex->store;
	r->id = id;
	r->dir = xstrdup(dir);
	r->handle = handle != NULL ? xstrdup(handle) : NULL;
	ex->nruns++;
	r->hooks = *h;
	r->out_fd = -1;
	r->agent_status = -1;
	buf_init(&r->out_pending, EXEC_MAX_PENDING);
}

void
exec_run_release(struct exec_run *r)
{
	if (r->ex != NULL)
		r->ex->nruns--;
	r->ex = NULL;
	free(r->handle);
	r->handle = NULL;
	free(r->dir);
	r->dir = NULL;
	free(r->gone_why);
	r->gone_why = NULL;
	buf_free(&r->out_pending);
	exec_secrets_clear(&r->secrets);
	exec_secrets_wipe(r->secrets_blob, r->secrets_len);
	r->secrets_blob = NULL;
	r->secrets_len = 0;
}

/* Follows R: output.log as it grows (inotify on its directory, for promptness) and the
 * agent's liveness (the tick). A directory that cannot be watched (no inotify, out of
 * watches, gone) is followed by the tick alone: R is never dropped for it, so that whatever
 * happens its end is recorded and its admission released. */
static void
exec_follow(struct exec_run *r)
{
	uv_fs_event_init(r->loop, &r->watch);
	uv_timer_init(r->loop, &r->tick);
	r->watch.data = r;
	r->tick.data = r;
	r->handles_open += 2;
	r->following = true;
	(void)uv_fs_event_start(&r->watch, exec_watch_cb, r->dir, 0);
	/* cannot fail: the handle is initialised and not closing */
	(void)uv_timer_start(&r->tick, exec_tick_cb, EXEC_TICK_MS, EXEC_TICK_MS);
}

static int
exec_mark_running(struct exec_run *r)
{
	/* an agent started ahead starts its command at not_before, not before */
	double started_at = rundir_now() < r->not_before ? r->not_before : rundir_now();

	return store_run_started(r->store, r->id, started_at, r->agent_pid,
	                         (int64_t)r->agent_start);
}

/* provision's callback: starts the agent (or records the run failed). */
static void
exec_provisioned(struct exec_run *r, int rc, const char *why)
{
	char *msg;

	r->provisioning = false;
	if (r->finished)
		return; /* cancelled or detached meanwhile (the executor should not have called) */
	if (rc < 0) {
		/* a reason of the list ("host key: ...", "runtime: ...") stands as it is */
		msg = why != NULL && rundir_failure_of_reason(why) != RUNDIR_FAILURE_NONE
		              ? xstrdup(why)
		              : xasprintf("provision: %s", why != NULL ? why : strerror(-rc));
		r->start_rc = rc;
		exec_finish(r, STORE_FAILED, msg);
		free(msg);
		return;
	}
	rc = r->ops->start(r);
	if (rc == 0) {
		rc = exec_mark_running(r);
		if (rc == -EALREADY)
			rc = 0; /* the agent was quicker than us: it is recorded already */
		r->start_rc = rc;
		return;
	}
	if (rc == -EBUSY || rc == -EALREADY) {
		/* the run is in another agent's hands, or its command already started: followed
		 * (and recorded) as after a restart, never started a second time */
		if (r->ops->reattach(r, NULL) == 0)
			exec_agent_gone(r, -1);
		return; /* gone, alive, or cannot tell yet: the tick asks again */
	}
	/* no agent ran, so neither did the command: the run failed, it was not lost */
	msg = xasprintf("could not start the agent: %s", strerror(-rc));
	r->start_rc = rc;
	exec_finish(r, STORE_FAILED, msg);
	free(msg);
}

int
exec_run_start(struct exec_run *r)
{
	exec_follow(r);
	r->start_rc = 0;
	r->provisioning = true;
	r->ops->provision(r, exec_provisioned);
	return r->start_rc; /* 0 while provisioning goes on */
}

int
exec_run_reattach(struct exec_run *r, const struct store_run *row)
{
	exec_follow(r);
	/* alive, or cannot tell yet (< 0): followed, and the tick asks again */
	if (r->ops->reattach(r, row) == 0)
		exec_agent_gone(r, -1);
	return 0;
}

int
exec_run_cancel(struct exec_run *r)
{
	if (r->agent_gone || r->finished)
		return -ESRCH;
	r->cancel_sent = true;
	if (r->provisioning) {
		/* no agent yet: cancelled here (teardown abandons the provisioning) */
		exec_finish(r, STORE_CANCELLED, "cancelled while its place was being made");
		return 0;
	}
	return r->ops->cancel(r);
}

void
exec_run_detach(struct exec_run *r)
{
	if (r->finished)
		return;
	r->finished = true;
	exec_close(r);
}
