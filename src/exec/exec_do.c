/* src/exec/exec_do.c: the digitalocean executor: a droplet made for each run and deleted as
 * soon as the run's result is safe here (docs/digitalocean.md).
 *
 * A run's provision, all on the loop, each step a recorded phase:
 *   size     the cheapest size of the region whose memory, less `reserve`, holds the run's
 *            limit (the catalogue from `eph-cloud sizes`, kept a day); a size the provider
 *            refuses (422) is left for the next one, and the reason says so;
 *   create   a fresh login key and a fresh host key for the run (ssh-keygen, into the run's
 *            private directory), then `eph-cloud create` with cloud-init user data holding
 *            the login key's public half and the host key, which is pinned in the run's own
 *            known_hosts: no key is ever learned on first use. The droplet's id is in the
 *            run's handle at once, so a restart finds it;
 *   boot     `eph-cloud get` every second until the droplet is active with an address, then
 *            ssh until it answers, within boot_timeout (else the droplet is deleted and the
 *            run fails, reason provision);
 *   ship     the ssh executor's own provision (exec_ssh.c) on a host made for the droplet,
 *            with the run's key and known_hosts: contact, pack, ship, start; then the run is
 *            followed as any ssh run.
 * Teardown (the run recorded, cancelled, lost, or its provision failed) deletes the droplet
 * and confirms it is gone (`get` says 404); the seconds from create to that confirmation are
 * the run's billed time (phase "machine"). A delete that fails is tried again with backoff.
 *
 * Reconcile, at the start and every `reconcile` period: the droplets tagged with this
 * scheduler's instance are listed; one no live run owns is deleted; a live run whose droplet
 * is gone is recorded lost.
 *
 * The executor's state is an ssh executor's (ex->state, exec_ssh_int.h) whose hosts are the
 * droplets, with this file's own state beside it (se->cloud). All HTTP is eph-cloud's, a
 * process of its own: this process never links libcurl. */
#include <stdarg.h>

#include "exec/cloud_size.h"
#include "exec/exec_do_proc.h"
#include "exec/exec_ssh_int.h"
#include "exec/sizing.h"

#define DO_POLL_MS       1000        /* get, while a droplet boots */
#define DO_PROBE_MS      10000       /* one ssh probe of a booting droplet, at most */
#define DO_OUT_CAP       (8u << 20)  /* eph-cloud's answer */
#define DO_DEADLINE      60          /* seconds eph-cloud may take over one operation */
#define DO_DELETE_MAX_MS (60 * 1000) /* between tries of a delete that failed, at most */
#define DO_CONFIRM_TRIES 120         /* gets after a delete before it is sent again */
#define DO_READY_SAMPLES 20
#define DO_LEAD_MARGIN_S 2.0 /* on top of the measured percentile */
#define DO_KEY_MAX       (16u << 10)
#define DO_PERSIST_S     30 /* a droplet's ssh master outlives its last client this long */

struct do_exec;

enum m_state {
	M_NEW,      /* reserved, provision not started */
	M_SIZES,    /* the catalogue is being read */
	M_KEYS,     /* ssh-keygen */
	M_CREATING, /* eph-cloud create */
	M_BOOTING,  /* get until active */
	M_PROBING,  /* ssh until it answers */
	M_READY,    /* the ssh executor has it */
	M_DELETING, /* eph-cloud delete */
	M_CONFIRM,  /* get until gone */
};

/* A droplet made (or being made) for a run. Owned by the executor: it outlives its run until
 * its deletion is confirmed. */
struct do_machine {
	struct do_exec *dx;
	struct do_machine *next;
	int64_t run;        /* the run it is for */
	struct ssh_run *s;  /* the run's backend while the run is followed; NULL after teardown */
	struct ssh_host *h; /* the ssh executor's host for the droplet, once it has an address */
	exec_provisioned_fn *prov_done;
	exec_provisioned_fn *ready_done; /* the run's own, while the ssh executor provisions */
	enum m_state st;
	int64_t droplet; /* 0 until created */
	char *size;      /* the slug */
	uint64_t size_memory;
	double price_hourly, price_monthly;
	double create_t;   /* UTC s the create was sent: billing starts */
	double t0, t_mark; /* provision's start; the current phase's */
	double boot_deadline;
	char *keydir;           /* STATE/runs/ID/cloud, 0700 */
	char *login_key;        /* keydir/login */
	char *known_hosts;      /* keydir/known_hosts */
	char *host_key;         /* keydir/host_ed25519 */
	char *host_pub;         /* its public half, as known_hosts writes it */
	char *why_sizes;        /* sizes refused, for the reason */
	char *last_why;         /* the last probe's failure */
	struct conf_strv tried; /* slugs refused (422) */
	struct do_proc *proc;   /* the eph-cloud or ssh-keygen in flight */
	struct remote_op *probe;
	uv_timer_t timer;
	bool timer_open;
	bool delete_wanted; /* delete once create has answered */
	bool holds_ex;      /* counted in ex->nruns after its run: the executor (retired at a
	                     * reload, or made for runs whose executor left the file) is kept until
	                     * the droplet's deletion is confirmed */
	bool lost_told;
	int fails;
	int confirms;
	double delete_t; /* delete requested */
	/* what max_spend counts the machine for: its job's timeout, else an hour */
	double timeout_s;
	/* what the size must hold: spec.json's memory (a profiled run's room for the profiler
	 * included), else the run's reserved memory */
	uint64_t need;
};

struct do_exec {
	struct ssh_exec *se;
	struct executor *ex; /* NULL once destroyed */
	struct conf_do set;  /* owned copies */
	bool configured;
	char *prog;                /* eph-cloud */
	struct cloud_catalog *cat; /* the sizes: eph-cloud's, or the cache file's */
	struct do_machine *machines;
	uv_timer_t rec;
	bool rec_open, rec_running;
	struct do_proc *rec_proc;
	int nops; /* processes and timers of the executor and its machines in flight */
	bool dead;
	/* max_spend: what the machines deleted this month were billed (STATE/cloud/NAME-spend.json)
	 */
	char month[8]; /* "YYYY-MM", UTC */
	double spent;
	bool spend_loaded;
	bool budget_told; /* mail.admin heard that runs fail for the budget */
	double budget_since;
	/* the last DO_READY_SAMPLES times from create to the agent started, in seconds: a
	 * scheduled run's machine is made that much (their 90th percentile, plus a margin)
	 * before its instant (ex->lead_ms); boot_estimate until one is measured */
	double ready[DO_READY_SAMPLES];
	size_t nready, ready_next;
};

static void machine_delete(struct do_machine *m);
static void machine_step(struct do_machine *m);
static void dx_op_done(struct do_exec *dx);

static struct do_exec *
dexec(const struct executor *ex)
{
	return ex->state != NULL ? sexec(ex)->cloud : NULL;
}

static double
now_s(void)
{
	return rundir_now();
}

/* --- settings ---------------------------------------------------------------------------- */

static char *
dup0(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
strv_copy(struct conf_strv *to, const struct conf_strv *from)
{
	to->n = from->n;
	to->v = from->n > 0 ? xcalloc(from->n + 1, sizeof(char *)) : NULL;
	for (size_t i = 0; i < from->n; i++)
		to->v[i] = xstrdup(from->v[i]);
}

static void
strv_clear(struct conf_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static void
set_clear(struct conf_do *s)
{
	free(s->token_file);
	free(s->token_env);
	free(s->region);
	free(s->image);
	strv_clear(&s->sizes);
	free(s->vpc_uuid);
	strv_clear(&s->ssh_keys);
	strv_clear(&s->tags);
	free(s->firewall);
	free(s->api_url);
	free(s->user);
	memset(s, 0, sizeof(*s));
}

static void
set_copy(struct conf_do *to, const struct conf_do *from)
{
	*to = *from;
	to->token_file = dup0(from->token_file);
	to->token_env = dup0(from->token_env);
	to->region = dup0(from->region);
	to->image = dup0(from->image);
	strv_copy(&to->sizes, &from->sizes);
	to->vpc_uuid = dup0(from->vpc_uuid);
	strv_copy(&to->ssh_keys, &from->ssh_keys);
	strv_copy(&to->tags, &from->tags);
	to->firewall = dup0(from->firewall);
	to->api_url = dup0(from->api_url);
	to->user = dup0(from->user);
}

/* --- eph-cloud ---------------------------------------------------------------------------- */

typedef void cloud_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind,
                      const char *err);

struct cloud_call {
	struct do_exec *dx;
	cloud_cb *cb;
	void *data;
};

static void
cloud_done(struct do_proc *p, int64_t status, const char *out, size_t len, void *data)
{
	struct cloud_call *c = data;
	struct do_exec *dx = c->dx;
	json_t *o = json_loadb(out, len, 0, NULL);
	const char *kind = NULL, *err = NULL;
	char *msg = NULL;

	(void)p;
	if (o == NULL || !json_is_object(o)) {
		msg = xasprintf("eph-cloud gave no answer (status %lld)", (long long)status);
		err = msg;
		kind = "server";
	} else if (status != 0 || json_object_get(o, "error") != NULL) {
		err = json_string_value(json_object_get(o, "error"));
		kind = json_string_value(json_object_get(o, "kind"));
		if (err == NULL) {
			msg = xasprintf("eph-cloud failed (status %lld)", (long long)status);
			err = msg;
		}
		if (kind == NULL)
			kind = "server";
	}
	c->cb(dx, c->data, err == NULL ? o : NULL, kind, err); /* each checks for a dead DX */
	json_decref(o);
	free(msg);
	free(c);
	dx_op_done(dx);
}

/* Runs `eph-cloud OP` with REQ (the provider's fields are added; REQ's reference is taken);
 * CB gets the answer (ANS) or the error (KIND, ERR). 0, or -errno (CB never called). */
static int
cloud_run(struct do_exec *dx, const char *op, json_t *req, cloud_cb *cb, void *data,
          struct do_proc **out)
{
	struct cloud_call *c;
	char *text, *argv[3];
	int rc;

	if (dx->prog == NULL || dx->set.api_url == NULL ||
	    (dx->set.token_file == NULL && dx->set.token_env == NULL)) {
		json_decref(req);
		return dx->prog == NULL ? -ENOENT : -EINVAL;
	}
	json_object_set_new(req, "provider", json_string("digitalocean"));
	json_object_set_new(req, "api_url", json_string(dx->set.api_url));
	if (dx->set.token_file != NULL)
		json_object_set_new(req, "token_file", json_string(dx->set.token_file));
	else
		json_object_set_new(req, "token_env", json_string(dx->set.token_env));
	if (json_object_get(req, "deadline") == NULL)
		json_object_set_new(req, "deadline", json_integer(DO_DEADLINE));
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL)
		return -ENOMEM;
	c = xcalloc(1, sizeof(*c));
	c->dx = dx;
	c->cb = cb;
	c->data = data;
	argv[0] = dx->prog;
	argv[1] = (char *)op;
	argv[2] = NULL;
	rc = do_proc_start(dx->ex->loop, argv, text, strlen(text), DO_OUT_CAP, cloud_done, c, out);
	exec_secrets_wipe(text, strlen(text)); /* a create's holds the run's host key; freed */
	if (rc < 0) {
		free(c);
		return rc;
	}
	dx->nops++;
	return 0;
}

/* --- the machines ------------------------------------------------------------------------- */

static void say(struct do_exec *dx, bool warn, int64_t run, const char *fmt, ...) EPH_PRINTF(4, 5);

/* A line for the owner about run RUN (0: the executor): a problem (WARN: ex->log) or a step
 * of a machine's life (ex->info). */
static void
say(struct do_exec *dx, bool warn, int64_t run, const char *fmt, ...)
{
	struct executor *ex = dx->ex;
	void (*fn)(struct executor *, int64_t, const char *, void *);
	va_list ap;
	char *msg;

	if (ex == NULL || (fn = warn ? ex->log : ex->info) == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg != NULL)
		fn(ex, run, msg, ex->health_arg);
	free(msg);
}

#define log_run(dx, run, ...)  say(dx, true, run, __VA_ARGS__)
#define info_run(dx, run, ...) say(dx, false, run, __VA_ARGS__)

static void
phase(struct do_machine *m, const char *name, double t0, double t1, double seconds)
{
	struct store_phase ph = { (char *)name, t0, t1, seconds };
	int rc;

	if (m->dx->ex == NULL)
		return;
	rc = store_phase_add(m->dx->ex->store, m->run, &ph);
	(void)rc; /* a phase is a nicety: the run goes on without it */
}

/* Ends the phase begun at m->t_mark, named NAME, and begins the next. */
static void
phase_next(struct do_machine *m, const char *name)
{
	double t = now_s();

	phase(m, name, m->t_mark, t, t - m->t_mark);
	m->t_mark = t;
}

static struct do_machine *
machine_new(struct do_exec *dx, int64_t run)
{
	struct do_machine *m = xcalloc(1, sizeof(*m));

	m->dx = dx;
	m->run = run;
	m->next = dx->machines;
	dx->machines = m;
	return m;
}

static void
machine_unlink(struct do_machine *m)
{
	struct do_machine **pp = &m->dx->machines;

	while (*pp != NULL && *pp != m)
		pp = &(*pp)->next;
	if (*pp != NULL)
		*pp = m->next;
}

static void
machine_free(struct do_machine *m)
{
	if (m->holds_ex && m->dx->ex != NULL)
		m->dx->ex->nruns--;
	free(m->size);
	free(m->keydir);
	free(m->login_key);
	free(m->known_hosts);
	free(m->host_key);
	free(m->host_pub);
	free(m->why_sizes);
	free(m->last_why);
	strv_clear(&m->tried);
	free(m);
}

/* One of DX's ops in flight has ended (after its callback): a destroyed DX is freed after
 * the last. */
static void
dx_op_done(struct do_exec *dx)
{
	dx->nops--;
	if (dx->dead && dx->nops == 0)
		free(dx);
}

/* In a callback of M's: whether its executor is destroyed (M is then freed once nothing of
 * it is in flight, and nothing more is done). */
static bool
machine_dead(struct do_machine *m)
{
	if (!m->dx->dead)
		return false;
	if (m->proc == NULL && m->probe == NULL && !m->timer_open)
		machine_free(m);
	return true;
}

static void
timer_closed(uv_handle_t *h)
{
	struct do_machine *m = h->data;
	struct do_exec *dx = m->dx;

	m->timer_open = false;
	if (!machine_dead(m) && m->st == M_CONFIRM && m->droplet == 0) {
		/* confirmed gone, or never made: nothing more */
		machine_unlink(m);
		machine_free(m);
	}
	dx_op_done(dx);
}

static void
timer_cb(uv_timer_t *t)
{
	machine_step(t->data);
}

/* MS from now, the machine's next step. */
static void
machine_later(struct do_machine *m, uint64_t ms)
{
	struct do_exec *dx = m->dx;

	if (dx->ex == NULL)
		return;
	if (!m->timer_open) {
		uv_timer_init(dx->ex->loop, &m->timer);
		m->timer.data = m;
		m->timer_open = true;
		dx->nops++;
	}
	uv_timer_start(&m->timer, timer_cb, ms, 0);
}

/* The provision of M's run ends, failed with WHY (RC < 0); its droplet, if any, is deleted
 * by the teardown that follows. */
static void
prov_fail(struct do_machine *m, int rc, const char *why)
{
	exec_provisioned_fn *done = m->prov_done;

	m->prov_done = NULL;
	if (done != NULL && m->s != NULL)
		done(m->s->r, rc, why);
}

/* --- the executor's own files: STATE/cloud/NAME-WHAT.json ---------------------------- */

static char *
state_path(const struct do_exec *dx, const char *what)
{
	return xasprintf("%s/cloud/%s-%s.json", dx->ex->state_dir, dx->ex->name, what);
}

/* The JSON of DX's file WHAT (at most CAP bytes), or NULL: absent, or unreadable (said, with
 * WHO: what it holds, as the owner may want to look). */
static json_t *
state_load(struct do_exec *dx, const char *what, size_t cap, const char *who)
{
	char *path = state_path(dx, what);
	json_t *o = NULL;
	struct buf b;
	int rc;

	buf_init(&b, cap);
	if ((rc = fsio_read_file(path, &b)) == 0)
		o = json_loadb(buf_cstr(&b), b.len, 0, NULL);
	if (o == NULL && rc != -ENOENT)
		log_run(dx, 0, "cannot read %s from %s: %s", who, path,
		        rc < 0 ? strerror(-rc) : "not JSON");
	buf_free(&b);
	free(path);
	return o;
}

/* Writes O (taken) whole and atomically as DX's file WHAT, with FSIO_* FLAGS; a failure is
 * said, with WHO. */
static void
state_save(struct do_exec *dx, const char *what, json_t *o, int flags, const char *who)
{
	char *path = state_path(dx, what), *dir = xasprintf("%s/cloud", dx->ex->state_dir);
	char *text = json_dumps(o, JSON_COMPACT);
	int rc = -ENOMEM;

	json_decref(o);
	if (text != NULL && (rc = fsio_mkdirs(dir, 0700)) == 0)
		rc = fsio_write_atomic(path, text, strlen(text), 0600, flags);
	if (rc < 0)
		log_run(dx, 0, "cannot keep %s in %s: %s", who, path, strerror(-rc));
	free(text);
	free(dir);
	free(path);
}

/* --- max_spend ------------------------------------------------------------------------------ */

static void
this_month(char out[8])
{
	time_t t = time(NULL);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	if (strftime(out, 8, "%Y-%m", &tm) == 0)
		memcpy(out, "0000-00", 8);
}

/* DX's spending this month, from its file (read once). */
static void
spend_load(struct do_exec *dx)
{
	char month[8];
	json_t *o;

	this_month(month);
	if (dx->spend_loaded && strcmp(month, dx->month) == 0)
		return;
	dx->spend_loaded = true;
	memcpy(dx->month, month, sizeof(month));
	dx->spent = 0;
	/* unreadable: max_spend counts from 0 again (said) */
	if ((o = state_load(dx, "spend", 4096, "its spending")) != NULL) {
		const char *m = json_string_value(json_object_get(o, "month"));

		if (m != NULL && strcmp(m, month) == 0)
			dx->spent = json_number_value(json_object_get(o, "usd"));
		json_decref(o);
	}
}

/* Adds USD to DX's spending this month, kept in its file. */
static void
spend_add(struct do_exec *dx, double usd)
{
	json_t *o;

	spend_load(dx);
	dx->spent += usd;
	o = json_object();
	json_object_set_new(o, "month", json_string(dx->month));
	json_object_set_new(o, "usd", json_real(dx->spent));
	state_save(dx, "spend", o, 0, "its spending");
}

/* Whether a machine at PRICE_HOURLY for M fits max_spend: the month's spending, plus each
 * live machine's cost to its timeout, plus this one's. NULL, or why not (caller frees). */
static char *
budget_check(struct do_machine *m, double price_hourly)
{
	struct do_exec *dx = m->dx;
	double live = 0, mine = price_hourly * m->timeout_s / 3600.0;
	char *why = NULL;

	if (dx->set.max_spend <= 0)
		return NULL;
	spend_load(dx);
	for (struct do_machine *o = dx->machines; o != NULL; o = o->next)
		if (o != m && o->droplet > 0 && o->price_hourly > 0)
			live += o->price_hourly * o->timeout_s / 3600.0;
	if (dx->spent + live + mine > dx->set.max_spend)
		why = xasprintf(
		        "a %s droplet to the run's timeout ($%.2f) with $%.2f spent this month "
		        "and $%.2f for the machines alive would pass max_spend ($%.2f a "
		        "month)",
		        m->size, mine, dx->spent, live, dx->set.max_spend);
	if (why != NULL && !dx->budget_told) {
		dx->budget_told = true;
		dx->budget_since = now_s();
		if (dx->ex->health != NULL)
			dx->ex->health(dx->ex, EXEC_HEALTH_BUDGET, true, dx->budget_since, why,
			               dx->ex->health_arg);
	} else if (why == NULL && dx->budget_told) {
		dx->budget_told = false;
		if (dx->ex->health != NULL)
			dx->ex->health(dx->ex, EXEC_HEALTH_BUDGET, false, dx->budget_since, NULL,
			               dx->ex->health_arg);
	}
	return why;
}

/* --- ahead of the instant ------------------------------------------------------------------ */

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* EX->lead_ms from DX's measured readiness, else its boot_estimate. */
static void
lead_update(struct do_exec *dx)
{
	double v[DO_READY_SAMPLES], s;

	if (dx->ex == NULL)
		return;
	if (dx->nready == 0) {
		dx->ex->lead_ms = dx->set.boot_estimate * 1000;
		return;
	}
	memcpy(v, dx->ready, dx->nready * sizeof(double));
	qsort(v, dx->nready, sizeof(double), dbl_cmp);
	s = v[(dx->nready * 9 + 9) / 10 - 1] + DO_LEAD_MARGIN_S; /* nearest-rank p90 */
	dx->ex->lead_ms = (int64_t)(s * 1000);
}

/* The measured readiness survives a restart: STATE/cloud/NAME-ready.json, {"seconds": [...]}
 * oldest first, rewritten (whole, atomically, without fsync: a crash may lose the last one)
 * after each new sample. */
static void
ready_load(struct do_exec *dx)
{
	json_t *o, *v;
	size_t i;

	if ((o = state_load(dx, "ready", 64u << 10, "the boot times measured")) != NULL) {
		json_array_foreach(json_object_get(o, "seconds"), i, v)
		{
			double x = json_number_value(v);

			if (!json_is_number(v) || !(x > 0 && x < 86400))
				continue;
			dx->ready[dx->ready_next] = x;
			dx->ready_next = (dx->ready_next + 1) % DO_READY_SAMPLES;
			if (dx->nready < DO_READY_SAMPLES)
				dx->nready++;
		}
		json_decref(o);
	}
}

static void
ready_save(struct do_exec *dx)
{
	json_t *o = json_object(), *a = json_array();
	size_t first = dx->nready < DO_READY_SAMPLES ? 0 : dx->ready_next;

	for (size_t i = 0; i < dx->nready; i++)
		json_array_append_new(a, json_real(dx->ready[(first + i) % DO_READY_SAMPLES]));
	json_object_set_new(o, "seconds", a);
	state_save(dx, "ready", o, FSIO_NOSYNC, "the boot times measured");
}

/* The agent of M's run has started (RC 0) or could not: the time from create to ready is
 * measured, then the run's provision ends as the ssh executor said. */
static void
ready_done(struct exec_run *r, int rc, const char *why)
{
	struct ssh_run *s = r->backend;
	struct do_machine *m = s != NULL ? s->cloud : NULL;
	exec_provisioned_fn *done = m != NULL ? m->ready_done : NULL;

	if (m == NULL || done == NULL)
		return;
	m->ready_done = NULL;
	if (rc == 0 && m->create_t > 0) {
		struct do_exec *dx = m->dx;

		dx->ready[dx->ready_next] = now_s() - m->create_t;
		dx->ready_next = (dx->ready_next + 1) % DO_READY_SAMPLES;
		if (dx->nready < DO_READY_SAMPLES)
			dx->nready++;
		ready_save(dx);
		lead_update(dx);
		/* made ahead of its instant: the seconds billed before the command could start */
		if (r->not_before > m->create_t)
			phase(m, "ahead", m->create_t, r->not_before, r->not_before - m->create_t);
	}
	done(r, rc, why);
}

/* --- size --------------------------------------------------------------------------------- */

static void
sizes_clear(struct do_exec *dx)
{
	cloud_catalog_free(dx->cat);
	dx->cat = NULL;
}

/* The catalogue eph-cloud answered (ANS), kept and written to the cache file. */
static void
sizes_parse(struct do_exec *dx, json_t *ans)
{
	struct cloud_catalog *cat = NULL;
	char *text = json_dumps(ans, JSON_COMPACT), *err = NULL, *path;
	int64_t now = (int64_t)now_s();
	int rc;

	if (text == NULL || cloud_catalog_parse(text, strlen(text), &cat, &err) < 0) {
		log_run(dx, 0, "the sizes eph-cloud gave cannot be read: %s",
		        err != NULL ? err : "?");
		free(err);
		free(text);
		return;
	}
	free(text);
	sizes_clear(dx);
	dx->cat = cat;
	cat->fetched_at = now;
	path = cloud_catalog_path(dx->ex->state_dir, dx->ex->name);
	if ((rc = cloud_catalog_save(path, cat, "digitalocean", now)) < 0)
		log_run(dx, 0, "cannot write %s: %s", path, strerror(-rc));
	free(path);
}

/* The cache file's catalogue, when DX has none yet (a stale one is used until refreshed). */
static void
sizes_load_cache(struct do_exec *dx)
{
	char *path, *err = NULL;

	if (dx->cat != NULL)
		return;
	path = cloud_catalog_path(dx->ex->state_dir, dx->ex->name);
	if (cloud_catalog_load(path, &dx->cat, &err) < 0)
		dx->cat = NULL;
	free(err);
	free(path);
}

static bool
tried(const struct do_machine *m, const char *slug)
{
	for (size_t i = 0; i < m->tried.n; i++)
		if (strcmp(m->tried.v[i], slug) == 0)
			return true;
	return false;
}

/* The size for NEED bytes: the cheapest candidate (exec/cloud_size.h: available here, memory
 * less the reserve holding NEED, within `sizes`) that was not refused. NULL when none. */
static const struct cloud_size *
size_choose(const struct do_exec *dx, const struct do_machine *m, uint64_t need)
{
	const struct cloud_size **c = NULL, *z = NULL;
	size_t n = 0;

	if (dx->cat == NULL || cloud_size_candidates(dx->cat, dx->set.region, need, dx->set.reserve,
	                                             (const char *const *)dx->set.sizes.v,
	                                             dx->set.sizes.n, &c, &n) < 0)
		return NULL;
	for (size_t i = 0; i < n && z == NULL; i++)
		if (!tried(m, c[i]->slug))
			z = c[i];
	free(c);
	return z;
}

/* --- create ------------------------------------------------------------------------------- */

/* The run's handle: the droplet and how to reach it, before the agent exists. */
static void
handle_extra(struct ssh_run *s, json_t *o)
{
	struct do_machine *m = s->cloud;

	if (m == NULL)
		return;
	json_object_set_new(o, "droplet", json_integer(m->droplet));
	if (m->size != NULL)
		json_object_set_new(o, "size", json_string(m->size));
	json_object_set_new(o, "size_memory", json_integer((json_int_t)m->size_memory));
	json_object_set_new(o, "price_hourly", json_real(m->price_hourly));
	json_object_set_new(o, "price_monthly", json_real(m->price_monthly));
	json_object_set_new(o, "created", json_real(m->create_t));
	/* where the API and its token are (never the token): the droplet can be deleted even
	 * once its executor has left the jobs file */
	if (m->dx->set.api_url != NULL)
		json_object_set_new(o, "api_url", json_string(m->dx->set.api_url));
	if (m->dx->set.token_file != NULL)
		json_object_set_new(o, "token_file", json_string(m->dx->set.token_file));
	if (m->dx->set.token_env != NULL)
		json_object_set_new(o, "token_env", json_string(m->dx->set.token_env));
}

static int
write_handle(struct do_machine *m)
{
	json_t *o = json_object();
	char *text;
	int rc;

	json_object_set_new(o, "type", json_string("digitalocean"));
	if (m->known_hosts != NULL)
		json_object_set_new(o, "known_hosts", json_string(m->known_hosts));
	if (m->login_key != NULL)
		json_object_set_new(o, "identity_file", json_string(m->login_key));
	handle_extra(m->s, o);
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	rc = exec_run_set_handle(m->s->r, text);
	free(text);
	return rc;
}

/* Reads PATH (a key ssh-keygen wrote) into a new string; NULL if it cannot. */
static char *
read_key(const char *path)
{
	struct buf b;
	char *s = NULL;

	buf_init(&b, DO_KEY_MAX);
	if (fsio_read_file(path, &b) == 0)
		s = buf_steal(&b);
	buf_free(&b);
	return s;
}

/* TEXT indented by IND spaces on each line, for a YAML block. Caller frees. */
static char *
indent(const char *text, int ind)
{
	struct buf b;
	const char *p = text;
	char *s;

	buf_init(&b, BUF_MAX_UNLIMITED);
	while (*p != '\0') {
		size_t n = strcspn(p, "\n");

		if (buf_printf(&b, "%*s%.*s\n", ind, "", (int)n, p) < 0)
			break; /* unbounded: never */
		p += n;
		if (*p == '\n')
			p++;
	}
	s = buf_steal(&b);
	buf_free(&b);
	return s != NULL ? s : xstrdup("");
}

/* The cloud-init user data: the login key let in for the user, and the host key given
 * through ssh_keys (host keys written any other way are made again at first boot). */
static char *
user_data(const char *login_pub, const char *host_priv, const char *host_pub, const char *user)
{
	char *priv = indent(host_priv, 4), *s;
	size_t n = strcspn(login_pub, "\n"), hn = strcspn(host_pub, "\n");

	if (strcmp(user, "root") == 0)
		s = xasprintf("#cloud-config\n"
		              "disable_root: false\n"
		              "ssh_authorized_keys:\n  - %.*s\n"
		              "ssh_deletekeys: true\n"
		              "ssh_keys:\n  ed25519_private: |\n%s  ed25519_public: %.*s\n",
		              (int)n, login_pub, priv, (int)hn, host_pub);
	else
		s = xasprintf("#cloud-config\n"
		              "users:\n  - name: %s\n    ssh_authorized_keys:\n      - %.*s\n"
		              "ssh_deletekeys: true\n"
		              "ssh_keys:\n  ed25519_private: |\n%s  ed25519_public: %.*s\n",
		              user, (int)n, login_pub, priv, (int)hn, host_pub);
	free(priv);
	return s;
}

static void create_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind,
                      const char *err);

/* The droplet's name: eph-<job>-<run>, a job's "_" made "-" (the provider allows letters,
 * digits, "." and "-"). Caller frees. */
static char *
droplet_name(struct do_machine *m)
{
	struct store_run row;
	char *name;

	store_run_init(&row);
	if (store_run_get(m->dx->ex->store, m->run, &row) == 0 && row.job != NULL)
		name = xasprintf("eph-%s-%lld", row.job, (long long)m->run);
	else
		name = xasprintf("eph-run-%lld", (long long)m->run);
	store_run_clear(&row);
	for (char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			*p = '-';
	return name;
}

static void
create_send(struct do_machine *m)
{
	struct do_exec *dx = m->dx;
	char *pub = NULL, *hpriv = NULL, *hpub = NULL, *path, *ud, *name;
	json_t *req, *tags, *keys;
	int rc;

	path = xasprintf("%s.pub", m->login_key);
	pub = read_key(path);
	free(path);
	hpriv = read_key(m->host_key);
	path = xasprintf("%s.pub", m->host_key);
	hpub = read_key(path);
	free(path);
	if (pub == NULL || hpriv == NULL || hpub == NULL) {
		free(pub);
		free(hpriv);
		free(hpub);
		prov_fail(m, -EIO, "cannot read the run's fresh ssh keys");
		return;
	}
	free(m->host_pub);
	m->host_pub = xasprintf("%.*s", (int)strcspn(hpub, "\n"), hpub);
	ud = user_data(pub, hpriv, hpub, dx->set.user);
	exec_secrets_wipe(hpriv, strlen(hpriv));
	/* the host's private key goes to the machine only: kept here just until it is read */
	if (unlink(m->host_key) < 0 && errno != ENOENT)
		log_run(dx, m->run, "cannot remove %s: %s", m->host_key, strerror(errno));
	free(pub);
	free(hpub);
	name = droplet_name(m);
	req = json_object();
	json_object_set_new(req, "name", json_string(name));
	json_object_set_new(req, "region", json_string(dx->set.region));
	json_object_set_new(req, "size", json_string(m->size));
	json_object_set_new(req, "image", json_string(dx->set.image));
	tags = json_array();
	json_array_append_new(tags, json_string("ephemeron"));
	{
		char *t = xasprintf("eph-instance:%s", dx->ex->instance);

		json_array_append_new(tags, json_string(t));
		free(t);
		t = xasprintf("eph-run:%lld", (long long)m->run);
		json_array_append_new(tags, json_string(t));
		free(t);
	}
	for (size_t i = 0; i < dx->set.tags.n; i++)
		json_array_append_new(tags, json_string(dx->set.tags.v[i]));
	json_object_set_new(req, "tags", tags);
	json_object_set_new(req, "user_data", json_string(ud));
	keys = json_array();
	for (size_t i = 0; i < dx->set.ssh_keys.n; i++)
		json_array_append_new(keys, json_string(dx->set.ssh_keys.v[i]));
	json_object_set_new(req, "ssh_keys", keys);
	if (dx->set.vpc_uuid != NULL)
		json_object_set_new(req, "vpc_uuid", json_string(dx->set.vpc_uuid));
	exec_secrets_wipe(ud, strlen(ud));
	free(name);
	m->st = M_CREATING;
	m->create_t = now_s();
	info_run(dx, m->run, "creating a %s droplet in %s", m->size, dx->set.region);
	rc = cloud_run(dx, "create", req, create_cb, m, &m->proc);
	if (rc < 0) {
		m->proc = NULL;
		m->st = M_NEW;
		prov_fail(m, rc, "cannot run eph-cloud");
	}
}

static void size_pick(struct do_machine *m);

static void
firewall_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err)
{
	struct do_machine *m = data;
	char *why;

	(void)kind;
	m->proc = NULL;
	if (machine_dead(m))
		return;
	if (m->s == NULL) { /* torn meanwhile */
		machine_delete(m);
		return;
	}
	if (ans == NULL) { /* the run fails; its teardown deletes the droplet */
		why = xasprintf("firewall %s: %s", dx->set.firewall, err);
		prov_fail(m, -EIO, why);
		free(why);
		return;
	}
	machine_later(m, DO_POLL_MS);
}

/* M's droplet, just created, put behind the executor's firewall before it boots: the run
 * fails (and the droplet is deleted) if it cannot be. */
static void
firewall_send(struct do_machine *m)
{
	json_t *req = json_object();
	int rc;

	json_object_set_new(req, "id", json_integer(m->droplet));
	json_object_set_new(req, "firewall", json_string(m->dx->set.firewall));
	if ((rc = cloud_run(m->dx, "firewall", req, firewall_cb, m, &m->proc)) < 0)
		prov_fail(m, rc, "cannot run eph-cloud");
}

static void
create_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err)
{
	struct do_machine *m = data;
	char *why;

	(void)dx;
	m->proc = NULL;
	if (machine_dead(m))
		return; /* a droplet made meanwhile is found by the next start's reconcile */
	if (ans != NULL) {
		m->droplet = (int64_t)json_integer_value(json_object_get(ans, "id"));
		if (m->droplet <= 0) {
			m->st = M_NEW;
			prov_fail(m, -EPROTO, "eph-cloud create said no droplet id");
			return;
		}
		if (m->s == NULL || m->delete_wanted) { /* torn meanwhile */
			m->st = M_BOOTING;              /* no longer creating: deleted now */
			machine_delete(m);
			return;
		}
		if (write_handle(m) < 0) /* a restart's reconcile still finds it by its tags */
			log_run(dx, m->run, "cannot record droplet %lld in the run's handle",
			        (long long)m->droplet);
		phase_next(m, "create");
		info_run(dx, m->run, "droplet %lld (%s) created", (long long)m->droplet, m->size);
		m->st = M_BOOTING;
		m->boot_deadline = m->create_t + (double)dx->set.boot_timeout;
		if (dx->set.firewall != NULL) {
			firewall_send(m);
			return;
		}
		machine_later(m, DO_POLL_MS);
		return;
	}
	m->st = M_NEW;
	if (m->s == NULL) { /* torn meanwhile, nothing made */
		machine_delete(m);
		return;
	}
	if (kind != NULL && strcmp(kind, "unavailable") == 0) {
		/* 422: the size cannot be had here now; the next one is tried, and said */
		why = xasprintf("%s%s%s refused (%s)", m->why_sizes != NULL ? m->why_sizes : "",
		                m->why_sizes != NULL ? "; " : "", m->size, err);
		free(m->why_sizes);
		m->why_sizes = why;
		m->tried.v = xreallocarray(m->tried.v, m->tried.n + 2, sizeof(char *));
		m->tried.v[m->tried.n++] = xstrdup(m->size);
		m->tried.v[m->tried.n] = NULL;
		log_run(dx, m->run, "size %s refused in %s: %s; trying the next size", m->size,
		        dx->set.region, err);
		size_pick(m);
		return;
	}
	why = xasprintf("create: %s", err);
	prov_fail(m, -EIO, why);
	free(why);
}

static void keygen_cb(struct do_proc *p, int64_t status, const char *out, size_t len, void *data);
static void keygen_next(struct do_machine *m, int64_t status);

/* ssh-keygen for FILE (the login key first, then the host key). */
static int
keygen(struct do_machine *m, const char *file)
{
	char *argv[] = { (char *)"/usr/bin/ssh-keygen",
		         (char *)"-q",
		         (char *)"-t",
		         (char *)"ed25519",
		         (char *)"-N",
		         (char *)"",
		         (char *)"-C",
		         (char *)"ephemeron",
		         (char *)"-f",
		         (char *)file,
		         NULL };
	int rc;

	if (access(argv[0], X_OK) != 0)
		argv[0] = (char *)"/bin/ssh-keygen";
	(void)unlink(file);
	rc = do_proc_start(m->dx->ex->loop, argv, NULL, 0, 4096, keygen_cb, m, &m->proc);
	if (rc == 0)
		m->dx->nops++;
	return rc;
}

static void
keygen_cb(struct do_proc *p, int64_t status, const char *out, size_t len, void *data)
{
	struct do_machine *m = data;
	struct do_exec *dx = m->dx;

	(void)p;
	(void)out;
	(void)len;
	m->proc = NULL;
	if (!machine_dead(m))
		keygen_next(m, status);
	dx_op_done(dx);
}

/* ssh-keygen ended with STATUS: the host key next, or the create. */
static void
keygen_next(struct do_machine *m, int64_t status)
{
	int rc;

	if (m->s == NULL) { /* torn meanwhile: nothing made */
		machine_unlink(m);
		machine_free(m);
		return;
	}
	if (status != 0) {
		m->st = M_NEW;
		prov_fail(m, -EIO, "ssh-keygen failed: cannot make the run's keys");
		return;
	}
	if (access(m->host_key, F_OK) != 0) {
		if ((rc = keygen(m, m->host_key)) < 0) {
			m->st = M_NEW;
			prov_fail(m, rc, "cannot run ssh-keygen");
		}
		return;
	}
	create_send(m);
}

/* A limit decided from the job's history (memory: auto) or grown after an oom is rounded up
 * to the cloud ladder: the whole of the chosen size's memory less the reserve, which is paid
 * for anyway. The agent enforces spec.json's limit and records it with the result. 0, or
 * -errno. */
static int
ladder_round(struct do_machine *m)
{
	struct exec_run *r = m->s->r;
	uint64_t usable = m->size_memory - m->dx->set.reserve;
	struct rundir_spec sp;
	struct store_run row;
	struct diag d;
	bool decided;
	int rc = 0;

	store_run_init(&row);
	decided = store_run_get(r->store, r->id, &row) == 0 && row.memory_reason != NULL &&
	          strcmp(row.memory_reason, "configured") != 0 && row.memory_limit > 0;
	store_run_clear(&row);
	if (!decided || usable <= m->need)
		return 0;
	diag_init(&d);
	if ((rc = rundir_spec_read(r->dir, &sp, &d)) == 0) {
		if (sp.memory > 0 && sp.memory < usable) {
			info_run(m->dx, m->run, "its limit rounded up to the size: %llu MiB of %s",
			         (unsigned long long)((usable - sp.profile_room) >> 20), m->size);
			sp.memory = usable;
			rc = rundir_spec_write(r->dir, &sp);
		}
		rundir_spec_free(&sp);
	}
	diag_free(&d);
	return rc;
}

/* Chooses the size (the catalogue is there), then makes the keys. */
static void
size_pick(struct do_machine *m)
{
	struct do_exec *dx = m->dx;
	const struct cloud_size *z = size_choose(dx, m, m->need);
	char need[32], *why;
	int rc;

	if (z == NULL) {
		struct buf b;
		int brc;

		buf_init(&b, BUF_MAX_MSG);
		sizing_format(m->need, need, sizeof(need));
		brc = buf_printf(&b, "no size of %s holds %s plus the reserve", dx->set.region,
		                 need);
		if (m->why_sizes != NULL)
			brc |= buf_printf(&b, " (%s)", m->why_sizes);
		if (dx->cat != NULL) {
			char *seen = cloud_size_seen(dx->cat, dx->set.region,
			                             (const char *const *)dx->set.sizes.v,
			                             dx->set.sizes.n);

			brc |= buf_printf(&b, "; sizes seen: %s", seen);
			free(seen);
		}
		why = brc == 0 ? buf_steal(&b) : NULL; /* past the cap: the short reason */
		buf_free(&b);
		m->st = M_NEW;
		prov_fail(m, -ENOSPC, why != NULL ? why : "no size fits");
		free(why);
		return;
	}
	free(m->size);
	m->size = xstrdup(z->slug);
	m->size_memory = z->memory;
	m->price_monthly = z->price_monthly;
	if ((why = budget_check(m, z->price_hourly)) != NULL) {
		char *reason = rundir_failure_reason(RUNDIR_FAILURE_BUDGET, why);

		free(why);
		m->st = M_NEW;
		prov_fail(m, -EDQUOT, reason);
		free(reason);
		return;
	}
	m->price_hourly = z->price_hourly;
	if ((rc = ladder_round(m)) < 0) {
		m->st = M_NEW;
		prov_fail(m, rc, "cannot write the run's spec.json");
		return;
	}
	if (m->tried.n == 0)
		phase_next(m, "size");
	m->st = M_KEYS;
	if (m->keydir == NULL) {
		m->keydir = xasprintf("%s/cloud", m->s->r->dir);
		m->login_key = xasprintf("%s/login", m->keydir);
		m->host_key = xasprintf("%s/host_ed25519", m->keydir);
		m->known_hosts = xasprintf("%s/known_hosts", m->keydir);
		if ((rc = fsio_mkdirs(m->keydir, 0700)) < 0) {
			m->st = M_NEW;
			prov_fail(m, rc, "cannot make the run's key directory");
			return;
		}
	}
	if (access(m->host_key, F_OK) == 0) { /* after a 422: the same keys */
		create_send(m);
		return;
	}
	if ((rc = keygen(m, m->login_key)) < 0) {
		m->st = M_NEW;
		prov_fail(m, rc, "cannot run ssh-keygen");
	}
}

static void
sizes_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err)
{
	struct do_machine *m = data;
	char *why;

	(void)kind;
	m->proc = NULL;
	if (machine_dead(m))
		return;
	if (ans != NULL)
		sizes_parse(dx, ans);
	if (m->s == NULL) {
		machine_unlink(m);
		machine_free(m);
		return;
	}
	if (ans == NULL) {
		m->st = M_NEW;
		why = xasprintf("sizes: %s", err);
		prov_fail(m, -EIO, why);
		free(why);
		return;
	}
	size_pick(m);
}

/* --- boot --------------------------------------------------------------------------------- */

static void get_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err);
static void probe_answer(struct do_machine *m, const struct remote_result *res);

static void
probe_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct do_machine *m = data;
	struct do_exec *dx = m->dx;

	(void)op;
	m->probe = NULL;
	if (!machine_dead(m))
		probe_answer(m, res);
	dx_op_done(dx);
}

static void
probe_answer(struct do_machine *m, const struct remote_result *res)
{
	struct do_exec *dx = m->dx;

	if (m->s == NULL) {
		machine_delete(m);
		return;
	}
	if (res->fail == REMOTE_OK) {
		m->st = M_READY;
		phase_next(m, "boot");
		info_run(dx, m->run, "droplet %lld answers ssh at %s after %.1fs",
		         (long long)m->droplet, m->s->h->key, now_s() - m->create_t);
		m->ready_done = m->prov_done;
		m->prov_done = NULL;
		exec_ssh_ops.provision(m->s->r, ready_done);
		return;
	}
	if (res->fail == REMOTE_HOST_KEY || res->fail == REMOTE_AUTH) {
		char *why = ssh_reason(res);

		prov_fail(m, -EPERM, why);
		free(why);
		return;
	}
	free(m->last_why);
	m->last_why = xstrdup(res->why != NULL ? res->why : remote_fail_name(res->fail));
	machine_later(m, DO_POLL_MS);
}

/* The ssh multiplexing directory of a droplet's connections: the run's own key directory
 * (LOGIN_KEY's), so that no master made for an earlier droplet at the same address is ever
 * used; NULL (no multiplexing) when its path is too long for a socket. Caller frees. */
static char *
run_control_dir(const char *login_key)
{
	const char *slash = login_key != NULL ? strrchr(login_key, '/') : NULL;

	if (slash == NULL || (size_t)(slash - login_key) > REMOTE_CONTROL_DIR_MAX)
		return NULL;
	return xasprintf("%.*s", (int)(slash - login_key), login_key);
}

/* The droplet is active at ADDR: a host for it, with the run's key and known_hosts. */
static void
machine_host(struct do_machine *m, const char *addr)
{
	struct ssh_exec *se = m->dx->se;
	struct remote_host rh = { 0 };
	struct ssh_host *h;

	rh.user = m->dx->set.user;
	rh.addr = (char *)addr;
	rh.port = 22;
	h = ssh_host_add(se, &rh);
	h->cloud = true;
	h->configured = false; /* no other run is placed there */
	h->memory = m->size_memory;
	h->own_ssh = (struct remote_ssh){ .identity_file = xstrdup(m->login_key),
		                          .known_hosts = xstrdup(m->known_hosts),
		                          .control_dir = run_control_dir(m->login_key),
		                          .persist = DO_PERSIST_S,
		                          .connect_timeout = (int)m->dx->set.connect_timeout };
	m->s->h = h;
	m->h = h;
	h->used = m->s->memory;
}

/* The host key made for the run, pinned for ADDR before the first connection. */
static int
pin_host_key(struct do_machine *m, const char *addr)
{
	char *line = xasprintf("%s %s\n", addr, m->host_pub != NULL ? m->host_pub : "");
	int rc = fsio_write_atomic(m->known_hosts, line, strlen(line), 0600, 0);

	free(line);
	return rc;
}

static void
probe(struct do_machine *m)
{
	struct remote_req q = { m->dx->ex->loop, &m->s->h->own_ssh, &m->s->h->rh,
		                DO_PROBE_MS,     probe_cb,          m };

	if (remote_run(&q, "true", NULL, 0, 64, &m->probe) < 0) {
		machine_later(m, DO_POLL_MS);
		return;
	}
	m->dx->nops++;
}

static void
get_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err)
{
	struct do_machine *m = data;
	const char *st, *addr;

	(void)kind;
	m->proc = NULL;
	if (machine_dead(m))
		return;
	if (m->s == NULL) {
		machine_delete(m);
		return;
	}
	if (ans != NULL && json_is_true(json_object_get(ans, "gone"))) {
		prov_fail(m, -EIO, "the droplet was deleted while it booted");
		return;
	}
	if (ans == NULL) {
		log_run(dx, m->run, "get droplet %lld: %s", (long long)m->droplet, err);
		machine_later(m, DO_POLL_MS);
		return;
	}
	st = json_string_value(json_object_get(ans, "status"));
	addr = json_string_value(json_object_get(ans, "ipv4_public"));
	if (st != NULL && strcmp(st, "active") == 0 && addr != NULL) {
		if (pin_host_key(m, addr) < 0) {
			prov_fail(m, -EIO, "cannot write the run's known_hosts");
			return;
		}
		machine_host(m, addr);
		m->st = M_PROBING;
		probe(m);
		return;
	}
	machine_later(m, DO_POLL_MS);
}

/* The next step of M, from its timer. */
static void
machine_step(struct do_machine *m)
{
	struct do_exec *dx = m->dx;
	json_t *req;
	int rc;

	if (dx->ex == NULL)
		return;
	if (m->st == M_BOOTING || m->st == M_PROBING) {
		if (m->s == NULL) {
			machine_delete(m);
			return;
		}
		if (now_s() > m->boot_deadline) {
			char *why = xasprintf(
			        "droplet %lld did not %s within boot_timeout (%llds)%s%s",
			        (long long)m->droplet,
			        m->st == M_BOOTING ? "become active" : "answer ssh",
			        (long long)dx->set.boot_timeout, m->last_why != NULL ? ": " : "",
			        m->last_why != NULL ? m->last_why : "");

			prov_fail(m, -ETIMEDOUT, why);
			free(why);
			return;
		}
		if (m->st == M_PROBING) {
			probe(m);
			return;
		}
		req = json_object();
		json_object_set_new(req, "id", json_integer(m->droplet));
		json_object_set_new(req, "deadline", json_integer(10));
		if ((rc = cloud_run(dx, "get", req, get_cb, m, &m->proc)) < 0)
			machine_later(m, DO_POLL_MS);
		return;
	}
	if (m->st == M_DELETING || m->st == M_CONFIRM)
		machine_delete(m);
}

/* --- delete ------------------------------------------------------------------------------- */

static void
machine_gone(struct do_machine *m)
{
	struct do_exec *dx = m->dx;
	double t = now_s();

	phase(m, "delete", m->delete_t, t, t - m->delete_t);
	if (m->create_t > 0) {
		phase(m, "machine", m->create_t, t, t - m->create_t);
		if (m->price_hourly > 0)
			spend_add(dx, cloud_bill_do(m->price_hourly, m->price_monthly,
			                            (int64_t)m->create_t, t - m->create_t));
	}
	info_run(dx, m->run, "droplet %lld deleted, confirmed gone (%.0fs billed)",
	         (long long)m->droplet, t - m->create_t);
	m->droplet = 0;
	m->st = M_CONFIRM;
	if (m->h != NULL && m->s == NULL) /* its run is torn down: nothing of it uses the host */
		ssh_host_forget(dx->se, m->h);
	m->h = NULL;
	if (dx->ex->room != NULL)
		dx->ex->room(dx->ex, dx->ex->health_arg); /* called back from the loop: M is kept */
	if (m->timer_open) {
		uv_close((uv_handle_t *)&m->timer, timer_closed); /* frees M */
		return;
	}
	machine_unlink(m);
	machine_free(m);
}

static void
confirm_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err)
{
	struct do_machine *m = data;

	(void)dx;
	(void)kind;
	(void)err;
	m->proc = NULL;
	if (machine_dead(m))
		return;
	if (ans != NULL && json_is_true(json_object_get(ans, "gone"))) {
		machine_gone(m);
		return;
	}
	if (++m->confirms >= DO_CONFIRM_TRIES) {
		m->confirms = 0;
		m->st = M_DELETING; /* sent again */
	}
	machine_later(m, DO_POLL_MS);
}

static void
delete_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err)
{
	struct do_machine *m = data;
	uint64_t ms = 1000;

	(void)kind;
	m->proc = NULL;
	if (machine_dead(m))
		return;
	if (ans != NULL) {
		m->fails = 0;
		m->st = M_CONFIRM;
		if (json_is_true(json_object_get(ans, "gone"))) {
			machine_gone(m);
			return;
		}
		machine_step(m); /* at once: confirmed by a get */
		return;
	}
	m->fails++;
	for (int i = 1; i < m->fails && ms < DO_DELETE_MAX_MS; i++)
		ms *= 2;
	if (ms > DO_DELETE_MAX_MS)
		ms = DO_DELETE_MAX_MS;
	log_run(dx, m->run, "delete droplet %lld failed: %s; tried again in %llus",
	        (long long)m->droplet, err, (unsigned long long)(ms / 1000));
	machine_later(m, ms);
}

/* Deletes M's droplet (or forgets M, which has none), then confirms it is gone. */
static void
machine_delete(struct do_machine *m)
{
	struct do_exec *dx = m->dx;
	json_t *req;
	int rc;

	if (dx->ex == NULL || m->proc != NULL || m->probe != NULL)
		return; /* what is in flight calls back, and comes here again */
	if (m->st == M_CREATING) {
		m->delete_wanted = true;
		return;
	}
	if (m->droplet == 0) {
		if (m->timer_open) {
			m->st = M_CONFIRM;
			uv_close((uv_handle_t *)&m->timer, timer_closed);
			return;
		}
		machine_unlink(m);
		machine_free(m);
		return;
	}
	if (m->st != M_DELETING && m->st != M_CONFIRM) {
		m->st = M_DELETING;
		m->delete_t = now_s();
	}
	req = json_object();
	json_object_set_new(req, "id", json_integer(m->droplet));
	if (m->st == M_CONFIRM) {
		json_object_set_new(req, "deadline", json_integer(10));
		rc = cloud_run(dx, "get", req, confirm_cb, m, &m->proc);
	} else {
		rc = cloud_run(dx, "delete", req, delete_cb, m, &m->proc);
	}
	if (rc < 0)
		machine_later(m, 5000);
}

/* --- reconcile ---------------------------------------------------------------------------- */

static struct do_machine *
machine_of_droplet(struct do_exec *dx, int64_t id)
{
	for (struct do_machine *m = dx->machines; m != NULL; m = m->next)
		if (m->droplet == id)
			return m;
	return NULL;
}

/* Whether the store has run ID unfinished (its owner will follow or record it). */
static bool
run_live(struct do_exec *dx, int64_t id)
{
	struct store_run row;
	bool live;

	store_run_init(&row);
	live = store_run_get(dx->ex->store, id, &row) == 0 && !store_state_terminal(row.state);
	store_run_clear(&row);
	return live;
}

static void
list_cb(struct do_exec *dx, void *data, json_t *ans, const char *kind, const char *err)
{
	json_t *arr, *v, *t;
	size_t i, j;

	(void)data;
	(void)kind;
	dx->rec_running = false;
	dx->rec_proc = NULL;
	if (dx->dead)
		return;
	if (ans == NULL) {
		log_run(dx, 0, "reconcile: cannot list the droplets: %s", err);
		return;
	}
	arr = json_object_get(ans, "droplets");
	/* droplets no live run owns */
	json_array_foreach(arr, i, v)
	{
		int64_t id = (int64_t)json_integer_value(json_object_get(v, "id"));
		int64_t run = 0;
		struct do_machine *m;

		if (id <= 0 || (m = machine_of_droplet(dx, id)) != NULL)
			continue;
		json_array_foreach(json_object_get(v, "tags"), j, t)
		{
			const char *s = json_string_value(t);

			if (s != NULL && strncmp(s, "eph-run:", 8) == 0)
				run = strtoll(s + 8, NULL, 10);
		}
		if (run > 0 && run_live(dx, run))
			continue; /* its run's owner follows it, or records it */
		m = machine_new(dx, run);
		m->droplet = id;
		m->st = M_NEW;
		info_run(dx, run, "reconcile: droplet %lld is owned by no live run: deleted",
		         (long long)id);
		machine_delete(m);
	}
	/* live runs whose droplet is gone */
	for (struct do_machine *m = dx->machines; m != NULL; m = m->next) {
		bool found = false;

		if (m->s == NULL || m->droplet == 0 || m->st != M_READY || m->lost_told)
			continue;
		json_array_foreach(arr, i, v)
		{
			if ((int64_t)json_integer_value(json_object_get(v, "id")) == m->droplet)
				found = true;
		}
		if (!found && m->s->step == S_RUNNING) {
			char *why = xasprintf("its droplet %lld is gone", (long long)m->droplet);

			m->lost_told = true;
			m->s->lost = true;
			exec_run_lost(m->s->r, why);
			free(why);
		}
	}
}

static void
reconcile(struct do_exec *dx)
{
	json_t *req;
	char *tag;

	if (dx->rec_running || dx->ex == NULL)
		return;
	req = json_object();
	tag = xasprintf("eph-instance:%s", dx->ex->instance);
	json_object_set_new(req, "tag", json_string(tag));
	free(tag);
	if (cloud_run(dx, "list", req, list_cb, NULL, &dx->rec_proc) == 0)
		dx->rec_running = true;
}

static void
rec_cb(uv_timer_t *t)
{
	reconcile(t->data);
}

static void
rec_closed(uv_handle_t *h)
{
	dx_op_done(h->data);
}

/* --- ops ---------------------------------------------------------------------------------- */

static int
do_configure(struct executor *ex, const struct conf *c, const struct conf_executor *ce,
             struct diag *d)
{
	const struct conf_do *cd = ce->keys;
	struct ssh_exec *se;
	struct do_exec *dx;
	struct conf_executor none = *ce;
	int rc;

	none.keys = NULL;
	if ((rc = exec_ssh_ops.configure(ex, c, &none, d)) < 0)
		return rc;
	se = ex->state;
	if ((dx = se->cloud) == NULL) {
		dx = xcalloc(1, sizeof(*dx));
		dx->se = se;
		dx->ex = ex;
		dx->prog = fsio_exe_sibling("eph-cloud");
		se->cloud = dx;
		se->handle_extra = handle_extra;
		se->set.dir = xstrdup("~/.ephemeron");
		ready_load(dx);
	}
	if (cd == NULL)
		return 0; /* made for runs whose executor left the file */
	set_clear(&dx->set);
	set_copy(&dx->set, cd);
	dx->configured = true;
	lead_update(dx);
	se->set.lost_after = cd->lost_after;
	se->set.connect_timeout = cd->connect_timeout;
	se->set.default_memory = cd->default_memory;
	ex->max_wait = 0; /* runs wait for a machine slot in fire order */
	/* the periodic reconcile is the daemon's (it hears of health: ex->health); `eph run` in
	 * the foreground only deletes its own run's droplet, then ends */
	if (!dx->rec_open && ex->health != NULL) {
		uv_timer_init(ex->loop, &dx->rec);
		dx->rec.data = dx;
		dx->rec_open = true;
		dx->nops++;
		uv_timer_start(&dx->rec, rec_cb, 1000, (uint64_t)cd->reconcile * 1000);
	} else if (dx->rec_open) {
		uv_timer_set_repeat(&dx->rec, (uint64_t)cd->reconcile * 1000);
	}
	return 0;
}

static void
do_stop(struct executor *ex)
{
	struct do_exec *dx = dexec(ex);

	if (dx != NULL && dx->rec_open) {
		dx->rec_open = false;
		uv_close((uv_handle_t *)&dx->rec, rec_closed);
	}
	exec_ssh_ops.stop(ex);
}

static void
do_destroy(struct executor *ex)
{
	struct do_exec *dx = dexec(ex);

	if (dx != NULL) {
		if (dx->rec_open) {
			dx->rec_open = false;
			uv_close((uv_handle_t *)&dx->rec, rec_closed);
		}
		/* what is in flight ends quietly; the next start's reconcile finds any droplet */
		dx->dead = true;
		while (dx->machines != NULL) {
			struct do_machine *m = dx->machines;

			dx->machines = m->next;
			m->next = NULL;
			if (m->timer_open)
				uv_close((uv_handle_t *)&m->timer, timer_closed);
			else if (m->proc == NULL && m->probe == NULL)
				machine_free(m);
		}
		sizes_clear(dx);
		set_clear(&dx->set);
		free(dx->prog);
		dx->ex = NULL;
		dx->dead = true;
		sexec(ex)->cloud = NULL;
		if (dx->nops == 0)
			free(dx);
	}
	exec_ssh_ops.destroy(ex);
}

/* Machines alive or being made or deleted: what max_machines counts. */
static int
machines_live(const struct do_exec *dx)
{
	int n = 0;

	for (const struct do_machine *m = dx->machines; m != NULL; m = m->next)
		if (!(m->st == M_CONFIRM && m->droplet == 0)) /* gone, its timer closing */
			n++;
	return n;
}

static bool
do_fits(struct executor *ex, uint64_t memory)
{
	struct do_exec *dx = dexec(ex);

	(void)memory;
	return dx != NULL && machines_live(dx) < dx->set.max_machines;
}

static void
do_reserve(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	struct do_exec *dx = dexec(ex);
	uint64_t need = memory > 0 ? memory : dx->set.default_memory;
	struct ssh_run *s = ssh_run_new(r, NULL, need);
	struct do_machine *m = machine_new(dx, r->id);
	json_t *hd;

	s->cloud = m;
	m->s = s;
	if (r->handle == NULL || (hd = json_loads(r->handle, 0, NULL)) == NULL)
		return;
	/* a run an earlier process started: its droplet, and how to reach it */
	m->droplet = (int64_t)json_integer_value(json_object_get(hd, "droplet"));
	m->size = dup0(json_string_value(json_object_get(hd, "size")));
	m->size_memory = (uint64_t)json_integer_value(json_object_get(hd, "size_memory"));
	m->price_hourly = json_number_value(json_object_get(hd, "price_hourly"));
	m->price_monthly = json_number_value(json_object_get(hd, "price_monthly"));
	m->create_t = json_number_value(json_object_get(hd, "created"));
	m->login_key = dup0(json_string_value(json_object_get(hd, "identity_file")));
	m->known_hosts = dup0(json_string_value(json_object_get(hd, "known_hosts")));
	m->st = m->droplet > 0 ? M_READY : M_NEW;
	if (!dx->configured && dx->set.api_url == NULL) {
		/* an executor made for runs whose executor left the file: the API from the handle
		 */
		dx->set.api_url = dup0(json_string_value(json_object_get(hd, "api_url")));
		dx->set.token_file = dup0(json_string_value(json_object_get(hd, "token_file")));
		dx->set.token_env = dup0(json_string_value(json_object_get(hd, "token_env")));
		dx->set.user = xstrdup("root");
		dx->set.connect_timeout = 10;
	}
	{
		const char *key = json_string_value(json_object_get(hd, "host"));
		struct remote_host rh;
		struct diag d;

		diag_init(&d);
		if (key != NULL && m->login_key != NULL && m->known_hosts != NULL &&
		    remote_host_parse(key, (struct diag_pos){ 0 }, &rh, &d) == 0) {
			struct ssh_host *h = ssh_host_add(dx->se, &rh);

			h->cloud = true;
			h->own_ssh = (struct remote_ssh){
				.identity_file = xstrdup(m->login_key),
				.known_hosts = xstrdup(m->known_hosts),
				.control_dir = run_control_dir(m->login_key),
				.persist = DO_PERSIST_S,
				.connect_timeout = (int)dx->set.connect_timeout,
			};
			s->h = h;
			m->h = h;
			remote_host_clear(&rh);
		}
		diag_free(&d);
	}
	json_decref(hd);
}

static void
do_release(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	exec_ssh_ops.release(ex, r, memory);
}

static void
do_provision(struct exec_run *r, exec_provisioned_fn *done)
{
	struct ssh_run *s = r->backend;
	struct do_machine *m = s != NULL ? s->cloud : NULL;
	struct do_exec *dx = dexec(r->ex);
	json_t *req;
	int rc;

	if (m == NULL || dx == NULL || !dx->configured) {
		done(r, -EINVAL, "the digitalocean executor is not configured");
		return;
	}
	if (dx->prog == NULL || access(dx->prog, X_OK) != 0) {
		done(r, -ENOENT, "eph-cloud is not installed next to eph");
		return;
	}
	m->prov_done = done;
	m->t0 = m->t_mark = now_s();
	/* the run is this executor's from now on: a restart before its droplet is known finds
	 * it here (lost: its droplet, if made, has no live run and is deleted by reconcile),
	 * never as a local run to start again */
	if ((rc = write_handle(m)) < 0) {
		done(r, rc, "cannot record the run's handle");
		return;
	}
	{
		struct rundir_spec sp;
		struct diag d;

		diag_init(&d);
		m->timeout_s = 3600;
		m->need = s->memory;
		if (rundir_spec_read(r->dir, &sp, &d) == 0) {
			if (sp.timeout > 0)
				m->timeout_s = (double)sp.timeout;
			if (sp.memory > m->need)
				m->need = sp.memory;
			rundir_spec_free(&sp);
		}
		diag_free(&d);
	}
	s->prov_t0 = m->t0;
	sizes_load_cache(dx);
	if (dx->cat != NULL && cloud_catalog_fresh(dx->cat, (int64_t)now_s())) {
		size_pick(m);
		return;
	}
	m->st = M_SIZES;
	req = json_object();
	if ((rc = cloud_run(dx, "sizes", req, sizes_cb, m, &m->proc)) < 0) {
		m->st = M_NEW;
		prov_fail(m, rc, "cannot run eph-cloud");
	}
}

static void
do_teardown(struct exec_run *r)
{
	struct ssh_run *s = r->backend;
	struct do_machine *m = s != NULL ? s->cloud : NULL;

	if (m != NULL) {
		s->cloud = NULL;
		m->s = NULL;
		m->prov_done = NULL;
		m->ready_done = NULL;
		m->holds_ex = true;
		r->ex->nruns++;
	}
	exec_ssh_ops.teardown(r);
	if (m != NULL)
		machine_delete(m); /* or once what is in flight calls back */
}

static int
do_start(struct exec_run *r)
{
	return exec_ssh_ops.start(r);
}

static int
do_cancel(struct exec_run *r)
{
	return exec_ssh_ops.cancel(r);
}

static void
do_poll(struct exec_run *r)
{
	exec_ssh_ops.poll(r);
}

static int
do_alive(struct exec_run *r)
{
	return exec_ssh_ops.alive(r);
}

static enum exec_found
do_inspect(const struct store_run *row, char **why)
{
	return exec_ssh_ops.inspect(row, why);
}

static int
do_reattach(struct exec_run *r, const struct store_run *row)
{
	return exec_ssh_ops.reattach(r, row);
}

static void
do_pull(struct exec_run *r, bool last, exec_pulled_fn *done)
{
	exec_ssh_ops.pull(r, last, done);
}

const struct exec_ops exec_do_ops = {
	.name = "digitalocean",
	.fits = do_fits,
	.reserve = do_reserve,
	.release = do_release,
	.configure = do_configure,
	.destroy = do_destroy,
	.stop = do_stop,
	.provision = do_provision,
	.start = do_start,
	.cancel = do_cancel,
	.poll = do_poll,
	.alive = do_alive,
	.inspect = do_inspect,
	.reattach = do_reattach,
	.pull = do_pull,
	.teardown = do_teardown,
};
