/* src/exec/exec_slurm.c: the slurm executor: each run is a batch job of a Slurm cluster
 * (docs/slurm-executor.md).
 *
 * The run's directory is SHARED/<instance>/runs/<id>, under the executor's shared_dir, which
 * this machine and the nodes see at the same path. Its provision, all on the loop:
 *   pack    `eph pack SHARED_RUN_DIR --json`, a child: the commit's archive (and the
 *           requirements' wheels) made into SHARED/<instance> from this machine's mirror;
 *   agent   eph-agent copied once per process to SHARED/<instance>/eph-agent (uv_fs_copyfile,
 *           off the loop), so the nodes need nothing installed;
 *   submit  `sbatch --parsable` of `eph-agent RUN_DIR`, with --mem from the run's memory,
 *           --time from its timeout + kill_grace + time_grace, a job name carrying this
 *           instance and the run, its output into the run directory, and the executor's
 *           partition, account, qos and extra_args. The job id is the run's handle.
 * Inside the job the agent measures and enforces memory in the job's own cgroup
 * (EPH_ENFORCE=job). Every tick the run directory's new bytes are copied here (pull), and
 * result.json, once there, ends the run: it decides the outcome. Every few seconds
 * `scontrol -o show job ID` tells whether the job is still there; a job that ended without a
 * result is recorded from Slurm's state (OUT_OF_MEMORY oom, TIMEOUT timeout, CANCELLED
 * cancelled, anything else lost). A failing scontrol is evidence of nothing: the run is left
 * alone, and a controller that fails for down_after is told to the owner (ex->health).
 *
 * Every command runs as a child (uv_spawn; exec_slurm_cmd.c runs them and reads their
 * answers) whose output is read on the loop; each counts in R->handles_open until its handles
 * are closed. The backend is freed at teardown: commands still running then are abandoned (a
 * submission that still succeeds is cancelled, or its handle written when the run was only
 * detached). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/conf.h"
#include "exec/exec.h"
#include "exec/exec_slurm_int.h"
#include "remote/remote.h"
#include "rundir/rundir.h"
#include "rundir/treecopy.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define SLURM_QUERY_MS       2000  /* between two scontrol of one job */
#define SLURM_RECANCEL_MS    10000 /* a cancelled job still there is cancelled again */
#define SLURM_PROBE_MS       5000  /* between two pings of a controller that failed */
#define SLURM_COPY_CHUNK     (64u << 10)
#define SLURM_WHO            "the slurm controller"
/* How long a submission that a stopped daemon left out (its sbatch orphaned, still on its way
 * to the controller) is looked for by its job's name before its run is recorded lost: an
 * sbatch gives up well within this (Slurm's MessageTimeout, 10 s by default, and its own
 * retries), so a job found after it cannot appear any more. */
#define SLURM_SUBMIT_GRACE_S 120.0

enum slurm_step { L_NONE, L_PACK, L_AGENT, L_SUBMIT, L_SUBMITTED };

/* A run's backend (R->backend). */
struct slurm_run {
	struct exec_run *r;
	enum slurm_step step;
	exec_provisioned_fn *prov_done;
	char *rdir; /* the run directory under shared_dir */
	char *name; /* the job's name */
	char *job;  /* Slurm's job id, once submitted */
	char *host; /* "NODE (job ID)" once scontrol named its node: eph show, eph runs */
	struct slurm_cmd *cmd;  /* pack, sbatch or scontrol in flight */
	struct slurm_cmd *ccmd; /* scancel in flight */
	uv_fs_t *copy;          /* the agent's copy in flight */
	uv_fs_event_t *watch;   /* on RDIR, once submitted: NULL where it cannot be watched */
	int64_t next_query_ms;
	double submit_at;     /* UTC s when its sbatch went out (0: unknown), from the handle */
	int cancel_step;      /* the next scancel of a cancel: 0 pending, 1 running */
	int64_t cancel_at_ms; /* when the last one was sent */
};

static inline int64_t
mono_ms(void)
{
	return (int64_t)(uv_hrtime() / 1000000u);
}

static struct slurm_exec *
lexec(const struct executor *ex)
{
	return ex->state;
}

/* --- child commands --------------------------------------------------------------------- */

static void cmd_spawn_cancel(struct exec_run *r, const char *job);
static int send_cancel(struct slurm_run *s);
static void watch_start(struct slurm_run *s);

static void settings_free(struct slurm_exec *se);

/* One of SE's own handles is closed: SE goes once destroyed and none is left. */
void
slurm_exec_op_done(struct slurm_exec *se)
{
	if (--se->nops > 0 || !se->dead)
		return;
	settings_free(se);
	free(se);
}

/* An sbatch whose run let go of it succeeded: the run ended meanwhile (cancelled), and its
 * job is cancelled; or the run is detached (the process stops), and the next process follows
 * the job by the id written into its handle. */
void
slurm_cmd_abandoned(struct slurm_cmd *c)
{
	char *job = slurm_job_id(&c->out[0]);
	json_t *o;
	char *text;

	if (job == NULL)
		return;
	if (c->r->recorded) {
		cmd_spawn_cancel(c->r, job);
		free(job);
		return;
	}
	o = json_loads(c->r->handle != NULL ? c->r->handle : "{}", 0, NULL);
	if (o == NULL)
		o = json_object();
	json_object_set_new(o, "job", json_string(job));
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL || exec_run_set_handle(c->r, text) < 0) {
		/* the next process finds the run without its job: by its name (find_cb) */
	}
	free(text);
	json_decref(o);
	free(job);
}

/* For run R: counted in R->handles_open. */
static int
cmd_spawn_env(struct exec_run *r, char **argv, char **env, slurm_cmd_fn *cb, void *arg,
              struct slurm_cmd **out)
{
	return slurm_cmd_spawn(r->loop, r, NULL, argv, env, cb, arg, out);
}

static int
cmd_spawn(struct exec_run *r, char **argv, slurm_cmd_fn *cb, void *arg, struct slurm_cmd **out)
{
	return cmd_spawn_env(r, argv, NULL, cb, arg, out);
}

/* --- the controller's health ------------------------------------------------------------ */

static void
ctl_answered(struct slurm_exec *se)
{
	if (se->down_told && se->ex->health != NULL)
		se->ex->health(se->ex, SLURM_WHO, false, se->down_since, NULL, se->ex->health_arg);
	se->down_since = 0;
	se->down_told = false;
}

static void probe_arm(struct slurm_exec *se);

static void
ctl_failed(struct slurm_exec *se, const char *why)
{
	double now = rundir_now();

	if (se->down_since == 0)
		se->down_since = now;
	if (!se->down_told && now - se->down_since >= (double)se->down_after) {
		se->down_told = true;
		if (se->ex->health != NULL)
			se->ex->health(se->ex, SLURM_WHO, true, se->down_since, why,
			               se->ex->health_arg);
	}
	probe_arm(se);
}

static void
probe_cb(struct slurm_cmd *c, void *arg)
{
	struct slurm_exec *se = arg;
	const char *down;
	char *words;

	se->probe = NULL;
	if (c->status == 0 && strstr(buf_cstr(&c->out[0]), " is UP") != NULL) {
		ctl_answered(se);
		return;
	}
	/* "Slurmctld(primary) at HOST is DOWN", among lines of asterisks */
	down = strstr(buf_cstr(&c->out[0]), "Slurmctld");
	words = down != NULL ? xstrndup(down, strcspn(down, "\n"))
	                     : slurm_cmd_words(c, "scontrol ping");
	ctl_failed(se, words);
	free(words);
}

static void
probe_due(uv_timer_t *t)
{
	struct slurm_exec *se = t->data;
	char *args[3];

	if (se->down_since == 0 || se->probe != NULL || se->stopping || se->dead)
		return;
	args[0] = se->scontrol;
	args[1] = (char *)"ping";
	args[2] = NULL;
	if (slurm_cmd_spawn(se->ex->loop, NULL, se, args, NULL, probe_cb, se, &se->probe) < 0)
		probe_arm(se);
}

static void
probe_timer_closed(uv_handle_t *h)
{
	slurm_exec_op_done(h->data);
}

/* Between two pings: SLURM_PROBE_MS, or a third of a shorter down_after (at least 0.5 s),
 * so that the owner hears within it. */
static uint64_t
probe_ms(const struct slurm_exec *se)
{
	int64_t ms = se->down_after * 1000 / 3;

	return ms >= SLURM_PROBE_MS ? SLURM_PROBE_MS : ms < 500 ? 500 : (uint64_t)ms;
}

/* The next ping, probe_ms from now, unless one is due or out already. */
static void
probe_arm(struct slurm_exec *se)
{
	if (se->stopping || se->dead || se->probe != NULL)
		return;
	if (!se->timer_open) {
		uv_timer_init(se->ex->loop, &se->probe_timer);
		se->probe_timer.data = se;
		se->timer_open = true;
		se->nops++;
	}
	if (!uv_is_active((uv_handle_t *)&se->probe_timer))
		(void)uv_timer_start(&se->probe_timer, probe_due, probe_ms(se), 0);
}

/* No more pings: what is out ends on its own, unheard. */
static void
probe_end(struct slurm_exec *se)
{
	if (se->timer_open) {
		se->timer_open = false;
		uv_close((uv_handle_t *)&se->probe_timer, probe_timer_closed);
	}
	if (se->probe != NULL) {
		se->probe->cb = NULL;
		if (!se->probe->exited)
			(void)uv_process_kill(&se->probe->proc, SIGTERM);
		se->probe = NULL;
	}
}

/* --- the run's files --------------------------------------------------------------------- */

/* Appends to TO what FROM has beyond TO's length (nothing twice). 0 or -errno; a FROM not
 * there yet is 0. */
static int
copy_tail(const char *from, const char *to)
{
	int in, outfd, rc = 0;
	char *chunk;
	struct stat st;
	ssize_t n;
	off_t off;

	if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -errno;
	if ((outfd = open(to, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	if (fstat(outfd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	off = st.st_size;
	chunk = xmalloc(SLURM_COPY_CHUNK);
	while ((n = pread(in, chunk, SLURM_COPY_CHUNK, off)) > 0) {
		if ((rc = fsio_write_all(outfd, chunk, (size_t)n)) < 0)
			break;
		off += n;
	}
	if (n < 0 && rc == 0)
		rc = -errno;
	free(chunk);
out:
	close(in);
	close(outfd);
	return rc;
}

static bool
shared_has_result(const struct slurm_run *s)
{
	char *p = xasprintf("%s/%s", s->rdir, RUNDIR_RESULT);
	bool ok = access(p, F_OK) == 0;

	free(p);
	return ok;
}

/* Copies the new bytes of the shared run directory RDIR into DIR, here; with LAST also
 * agent.log, results/ and result.json (the last, so that the record finds everything else in
 * place). 0 or -errno. Touches nothing but the two trees: the thread pool runs it too. */
static int
pull_dirs(const char *rdir, const char *dir, bool last)
{
	static const char *const tails[] = { RUNDIR_OUTPUT, RUNDIR_EVENTS, "agent.log" };
	int rc = 0, rc2;

	for (size_t i = 0; i < (last ? 3u : 2u); i++) {
		char *from = xasprintf("%s/%s", rdir, tails[i]);
		char *to = xasprintf("%s/%s", dir, tails[i]);

		if ((rc2 = copy_tail(from, to)) < 0 && rc == 0)
			rc = rc2;
		free(from);
		free(to);
	}
	if (last) {
		char *from = xasprintf("%s/results", rdir), *to = xasprintf("%s/results", dir);
		struct stat st;
		struct buf b;

		if (stat(from, &st) == 0 && S_ISDIR(st.st_mode) && access(to, F_OK) < 0 &&
		    (rc2 = treecopy(from, to, NULL)) < 0 && rc == 0)
			rc = rc2;
		free(from);
		free(to);
		from = xasprintf("%s/%s", rdir, RUNDIR_RESULT);
		to = xasprintf("%s/%s", dir, RUNDIR_RESULT);
		buf_init(&b, BUF_MAX_JSON);
		rc2 = fsio_read_file(from, &b);
		if (rc2 == 0)
			rc2 = fsio_write_atomic(to, b.data != NULL ? b.data : "", b.len, 0600, 0);
		if (rc2 < 0 && rc2 != -ENOENT && rc == 0)
			rc = rc2;
		buf_free(&b);
		free(from);
		free(to);
	}
	return rc;
}

static int
pull_files(struct slurm_run *s, bool last)
{
	return pull_dirs(s->rdir, s->r->dir, last);
}

/* The last pull of a run, by the thread pool (its results/ may be large, on a network file
 * system): R stays while it is out (R->handles_open). */
struct last_pull {
	uv_work_t work;
	struct exec_run *r;
	exec_pulled_fn *done;
	char *rdir, *dir;
	int rc;
};

static void
last_pull_work(uv_work_t *w)
{
	struct last_pull *lp = w->data;

	lp->rc = pull_dirs(lp->rdir, lp->dir, true);
}

static void
last_pulled(uv_work_t *w, int status)
{
	struct last_pull *lp = w->data;
	struct exec_run *r = lp->r;

	lp->done(r, status < 0 ? status : lp->rc);
	free(lp->rdir);
	free(lp->dir);
	free(lp);
	exec_handle_closed(r); /* may free R */
}

static void
slurm_pull(struct exec_run *r, bool last, exec_pulled_fn *done)
{
	struct slurm_run *s = r->backend;
	struct last_pull *lp;

	if (s == NULL || s->rdir == NULL) {
		done(r, 0);
		return;
	}
	if (!last) {
		done(r, pull_files(s, false)); /* a second's new bytes */
		return;
	}
	lp = xcalloc(1, sizeof(*lp));
	lp->r = r;
	lp->done = done;
	lp->rdir = xstrdup(s->rdir);
	lp->dir = xstrdup(r->dir);
	lp->work.data = lp;
	r->handles_open++;
	if (uv_queue_work(r->loop, &lp->work, last_pull_work, last_pulled) < 0) {
		last_pull_work(&lp->work);
		last_pulled(&lp->work, 0);
	}
}

/* --- provision --------------------------------------------------------------------------- */

static void
prov_end(struct slurm_run *s, int rc, const char *why)
{
	exec_provisioned_fn *done = s->prov_done;

	s->prov_done = NULL;
	if (done != NULL)
		done(s->r, rc, why);
}

static void
prov_endf(struct slurm_run *s, int rc, const char *what, int err)
{
	char *why = xasprintf("%s: %s", what, strerror(-err));

	prov_end(s, rc, why);
	free(why);
}

/* The handle: the run directory, the job's name and, once submitted, its id. */
static int
write_handle(struct slurm_run *s)
{
	json_t *o = json_object();
	char *text;
	int rc;

	json_object_set_new(o, "type", json_string("slurm"));
	json_object_set_new(o, "dir", json_string(s->rdir));
	json_object_set_new(o, "name", json_string(s->name));
	if (s->job != NULL)
		json_object_set_new(o, "job", json_string(s->job));
	if (s->host != NULL)
		json_object_set_new(o, "host", json_string(s->host));
	if (s->submit_at > 0)
		json_object_set_new(o, "submit_at", json_real(s->submit_at));
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	rc = exec_run_set_handle(s->r, text);
	free(s->r->handle);
	s->r->handle = text; /* what an abandoned submission adds its job id to */
	return rc;
}

/* Writes the run's spec into its shared directory: the shared state directory, the code as
 * the archive ARCHIVE (NULL: as this machine's spec says, for eph pack to read), the wheels
 * WHEELS (NULL: none). 0, or -errno with *WHY (caller frees). */
static int
shared_spec(struct slurm_run *s, const char *archive, const char *wheels, char **why)
{
	struct slurm_exec *se = lexec(s->r->ex);
	struct rundir_spec sp;
	struct diag d;
	int rc;

	diag_init(&d);
	if ((rc = rundir_spec_read(s->r->dir, &sp, &d)) < 0) {
		*why = diag_nerrors(&d) > 0 ? diag_format(&d, 0) : xstrdup("cannot read spec.json");
		diag_free(&d);
		return rc;
	}
	diag_free(&d);
	free(sp.state_dir);
	sp.state_dir = xstrdup(se->base);
	if (archive != NULL) {
		free(sp.source.mirror);
		sp.source.mirror = NULL;
		free(sp.source.archive);
		sp.source.archive = xstrdup(archive);
	}
	free(sp.runtime.wheels);
	sp.runtime.wheels = wheels != NULL ? xstrdup(wheels) : NULL;
	rc = rundir_spec_write(s->rdir, &sp);
	rundir_spec_free(&sp);
	if (rc < 0)
		*why = xasprintf("cannot write %s/%s: %s", s->rdir, RUNDIR_SPEC, strerror(-rc));
	return rc;
}

static void run_agent(struct slurm_run *s);
static void run_submit(struct slurm_run *s);

static void
pack_cb(struct slurm_cmd *c, void *arg)
{
	struct slurm_run *s = arg;
	json_t *o =
	        json_loadb(c->out[0].data != NULL ? c->out[0].data : "", c->out[0].len, 0, NULL);
	const char *err, *archive, *wheels;
	char *why = NULL;

	s->cmd = NULL;
	if (o == NULL || !json_is_object(o)) {
		why = xasprintf("eph pack gave no answer (status %lld)", (long long)c->status);
		prov_end(s, -EIO, why);
		goto out;
	}
	if ((err = json_string_value(json_object_get(o, "error"))) != NULL) {
		const char *fl = json_string_value(json_object_get(o, "failure"));
		enum rundir_failure fr = RUNDIR_FAILURE_NONE;

		if (fl == NULL || rundir_failure_parse(fl, &fr) < 0)
			fr = RUNDIR_FAILURE_SOURCE;
		why = rundir_failure_reason(fr, err);
		prov_end(s, -EIO, why);
		goto out;
	}
	archive = json_string_value(json_object_get(o, "archive"));
	wheels = json_string_value(json_object_get(o, "wheels"));
	if (archive == NULL) {
		prov_end(s, -EIO, "eph pack gave no archive");
		goto out;
	}
	if (shared_spec(s, archive, wheels, &why) < 0) {
		prov_end(s, -EIO, why);
		goto out;
	}
	run_agent(s);
out:
	free(why);
	json_decref(o);
}

/* The path of this program's eph-agent (caller frees), or NULL. */
static char *
own_agent(void)
{
	char exe[PATH_MAX], *slash;
	size_t len = sizeof(exe);

	if (uv_exepath(exe, &len) < 0 || (slash = strrchr(exe, '/')) == NULL)
		return NULL;
	return xasprintf("%.*s/eph-agent", (int)(slash - exe), exe);
}

/* R's backend, made by reserve (the daemon) or here (a run in the foreground). */
static struct slurm_run *
backend_of(struct exec_run *r)
{
	struct slurm_run *s = r->backend;

	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->r = r;
		r->backend = s;
	}
	return s;
}

static void
slurm_provision(struct exec_run *r, exec_provisioned_fn *done)
{
	struct slurm_run *s = backend_of(r);
	struct slurm_exec *se = lexec(r->ex);
	char exe[PATH_MAX], *args[5], *why = NULL, *runs;
	size_t len = sizeof(exe);
	struct rundir_spec sp;
	struct diag d;
	int rc;

	s->prov_done = done;
	s->rdir = xasprintf("%s/runs/%lld", se->base, (long long)r->id);
	s->name = xasprintf("eph-%s-%lld", r->ex->instance[0] != '\0' ? r->ex->instance : "run",
	                    (long long)r->id);
	runs = xasprintf("%s/runs", se->base);
	rc = fsio_mkdirs(runs, 0700);
	free(runs);
	if (rc == 0 && mkdir(s->rdir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	if (rc < 0) {
		prov_endf(s, rc, s->rdir, rc);
		return;
	}
	/* the code: packed from this machine's mirror, when the run has one */
	diag_init(&d);
	rc = rundir_spec_read(r->dir, &sp, &d);
	diag_free(&d);
	if (rc < 0) {
		prov_endf(s, rc, "cannot read spec.json", rc);
		return;
	}
	bool pack = sp.source.mirror != NULL || sp.runtime.requirements != NULL;

	rundir_spec_free(&sp);
	if ((rc = shared_spec(s, NULL, NULL, &why)) < 0) {
		prov_end(s, rc, why);
		free(why);
		return;
	}
	if (!pack) {
		run_agent(s);
		return;
	}
	if ((rc = uv_exepath(exe, &len)) < 0) {
		prov_end(s, rc, "cannot find this program's own path");
		return;
	}
	s->step = L_PACK;
	args[0] = exe;
	args[1] = (char *)"pack";
	args[2] = s->rdir;
	args[3] = (char *)"--json";
	args[4] = NULL;
	if ((rc = cmd_spawn(r, args, pack_cb, s, &s->cmd)) < 0)
		prov_endf(s, rc, "cannot run eph pack", rc);
}

struct agent_copy {
	struct exec_run *r;
	struct slurm_run *s; /* NULL once torn down */
	char *tmp, *dst;
};

static void
agent_copied(uv_fs_t *req)
{
	struct agent_copy *ac = req->data;
	struct exec_run *r = ac->r;
	struct slurm_run *s = ac->s;
	int rc = (int)req->result;

	uv_fs_req_cleanup(req);
	free(req);
	if (rc == 0 && rename(ac->tmp, ac->dst) < 0)
		rc = -errno;
	if (rc < 0)
		(void)unlink(ac->tmp);
	if (s != NULL) {
		s->copy = NULL;
		if (rc < 0) {
			char *why = xasprintf("cannot copy the agent to %s: %s", ac->dst,
			                      strerror(-rc));

			prov_end(s, rc, why);
			free(why);
		} else {
			lexec(r->ex)->agent_copied = true;
			run_submit(s);
		}
	}
	free(ac->tmp);
	free(ac->dst);
	free(ac);
	exec_handle_closed(r); /* may free R */
}

/* eph-agent in the shared directory: copied once per process (a newer eph replaces it; a
 * job running the older one keeps its inode). */
static void
run_agent(struct slurm_run *s)
{
	struct slurm_exec *se = lexec(s->r->ex);
	struct agent_copy *ac;
	char *src;
	int rc;

	s->step = L_AGENT;
	if (se->agent_copied) {
		run_submit(s);
		return;
	}
	if ((src = own_agent()) == NULL || access(src, R_OK) < 0) {
		prov_end(s, -ENOENT, "no eph-agent next to this program to submit");
		free(src);
		return;
	}
	ac = xcalloc(1, sizeof(*ac));
	ac->r = s->r;
	ac->s = s;
	ac->dst = xasprintf("%s/eph-agent", se->base);
	ac->tmp = xasprintf("%s/.eph-agent.%d.%lld", se->base, (int)getpid(), (long long)s->r->id);
	s->copy = xcalloc(1, sizeof(*s->copy));
	s->copy->data = ac;
	s->r->handles_open++;
	rc = uv_fs_copyfile(s->r->loop, s->copy, src, ac->tmp, 0, agent_copied);
	free(src);
	if (rc < 0) {
		free(s->copy);
		s->copy = NULL;
		free(ac->tmp);
		free(ac->dst);
		free(ac);
		s->r->handles_open--;
		prov_endf(s, rc, "cannot copy the agent", rc);
	}
}

static void
submit_cb(struct slurm_cmd *c, void *arg)
{
	struct slurm_run *s = arg;
	struct slurm_exec *se = lexec(s->r->ex);
	char *words;

	s->cmd = NULL;
	if (c->status == 0 && (s->job = slurm_job_id(&c->out[0])) != NULL) {
		ctl_answered(se);
		s->step = L_SUBMITTED;
		watch_start(s);
		if (write_handle(s) < 0) {
			/* followed now all the same; a restart would find it lost */
		}
		prov_end(s, 0, NULL);
		return;
	}
	words = c->status == 0 ? xasprintf("sbatch printed no job id: %s", buf_cstr(&c->out[0]))
	                       : slurm_cmd_words(c, "sbatch");
	if (slurm_unreachable(words))
		ctl_failed(se, words);
	prov_end(s, -EIO, words);
	free(words);
}

/* MEMORY bytes as sbatch's --mem, in MiB, rounded up. */
static char *
mem_arg(uint64_t memory)
{
	return xasprintf("--mem=%lluM", (unsigned long long)((memory + (1u << 20) - 1) >> 20));
}

static void
run_submit(struct slurm_run *s)
{
	struct exec_run *r = s->r;
	struct slurm_exec *se = lexec(r->ex);
	struct rundir_spec sp;
	struct diag d;
	char **args, **env, *qa, *qr;
	size_t n = 0, cap = 16 + se->nextra;
	int rc;

	s->step = L_SUBMIT;
	diag_init(&d);
	rc = rundir_spec_read(s->rdir, &sp, &d);
	diag_free(&d);
	if (rc < 0) {
		prov_endf(s, rc, "cannot read the shared spec.json", rc);
		return;
	}
	/* in the store before the job can exist: a restart finds it by its name */
	s->submit_at = rundir_now();
	if ((rc = write_handle(s)) < 0) {
		rundir_spec_free(&sp);
		prov_endf(s, rc, "cannot record the run's handle", rc);
		return;
	}
	args = xcalloc(cap, sizeof(char *));
	args[n++] = xstrdup(se->sbatch);
	args[n++] = xstrdup("--parsable");
	args[n++] = xasprintf("--job-name=%s", s->name);
	args[n++] = xasprintf("--output=%s/agent.log", s->rdir);
	args[n++] = xstrdup("--open-mode=append");
	/* the job's environment is sbatch's, which sbatch_env chose */
	args[n++] = xstrdup("--export=ALL");
	if (sp.memory > 0)
		args[n++] = mem_arg(sp.memory);
	if (sp.timeout > 0)
		args[n++] = xasprintf(
		        "--time=%lld",
		        (long long)((sp.timeout + sp.kill_grace + se->time_grace + 59) / 60));
	if (se->partition != NULL)
		args[n++] = xasprintf("--partition=%s", se->partition);
	if (se->account != NULL)
		args[n++] = xasprintf("--account=%s", se->account);
	if (se->qos != NULL)
		args[n++] = xasprintf("--qos=%s", se->qos);
	for (size_t i = 0; i < se->nextra; i++)
		args[n++] = xstrdup(se->extra[i]);
	qa = xasprintf("%s/eph-agent", se->base);
	qr = remote_quote(qa);
	free(qa);
	qa = qr;
	qr = remote_quote(s->rdir);
	/* the agent measures and enforces in the job's own cgroup (EPH_ENFORCE=job) */
	args[n++] = xasprintf(
	        "--wrap=export PATH=\"${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}\"; "
	        "EPH_ENFORCE=job exec %s %s",
	        qa, qr);
	args[n] = NULL;
	free(qa);
	free(qr);
	rundir_spec_free(&sp);
	env = slurm_sbatch_env();
	rc = cmd_spawn_env(r, args, env, submit_cb, s, &s->cmd);
	free(env);
	if (rc >= 0)
		s->cmd->submit = true;
	for (size_t i = 0; i < n; i++)
		free(args[i]);
	free(args);
	if (rc < 0) {
		char *why = xasprintf("cannot run %s: %s", se->sbatch, strerror(-rc));

		prov_end(s, rc, why);
		free(why);
	}
}

static void
watch_closed(uv_handle_t *h)
{
	struct exec_run *r = h->data;

	free(h);
	exec_handle_closed(r); /* may free R */
}

/* A change in the shared run directory: its result ends the run at once (the tick would see
 * it within a second), its output comes here as it grows. Where the file system tells nothing
 * (NFS), the tick does it all. */
static void
watch_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
	struct exec_run *r = h->data;
	struct slurm_run *s = r->backend;

	(void)events;
	if (status < 0 || name == NULL || s == NULL || r->agent_gone || r->finished)
		return;
	if (strcmp(name, RUNDIR_RESULT) == 0 && shared_has_result(s))
		exec_agent_gone(r, 0); /* the last pull brings it */
	else if (strcmp(name, RUNDIR_OUTPUT) == 0 || strcmp(name, RUNDIR_EVENTS) == 0)
		(void)pull_files(s, false);
}

static void
watch_start(struct slurm_run *s)
{
	struct exec_run *r = s->r;

	if (s->watch != NULL)
		return;
	s->watch = xcalloc(1, sizeof(*s->watch));
	uv_fs_event_init(r->loop, s->watch);
	s->watch->data = r;
	r->handles_open++;
	if (uv_fs_event_start(s->watch, watch_cb, s->rdir, 0) < 0) {
		uv_close((uv_handle_t *)s->watch, watch_closed);
		s->watch = NULL;
	}
}

/* Submitted by provision: nothing is left to do. */
static int
slurm_start(struct exec_run *r)
{
	struct slurm_run *s = r->backend;

	return s != NULL && s->step == L_SUBMITTED ? 0 : -EINVAL;
}

/* --- following -------------------------------------------------------------------------- */

/* Records R, whose job JOB ended in STATE (Reason WHY) without a result. */
static void
end_without_result(struct slurm_run *s, const char *state, const char *reason)
{
	struct exec_run *r = s->r;
	enum store_state st = STORE_LOST;
	char *why;

	if (strcmp(state, "OUT_OF_MEMORY") == 0) {
		st = STORE_OOM;
		why = xasprintf("killed by the memory limit (Slurm job %s ended OUT_OF_MEMORY "
		                "before the agent wrote a result)",
		                s->job);
	} else if (strcmp(state, "TIMEOUT") == 0) {
		st = STORE_TIMEOUT;
		why = xasprintf("timed out: Slurm ended job %s at its time limit (TIMEOUT) before "
		                "the agent wrote a result",
		                s->job);
	} else if (strcmp(state, "CANCELLED") == 0) {
		st = STORE_CANCELLED;
		why = xasprintf("cancelled: Slurm job %s was cancelled before the agent wrote a "
		                "result",
		                s->job);
	} else if (strcmp(state, "FORGOTTEN") == 0) {
		why = xasprintf("Slurm no longer knows job %s (past its MinJobAge), and the agent "
		                "left no result",
		                s->job);
	} else if (strcmp(state, "NODE_FAIL") == 0) {
		why = xasprintf("the node of Slurm job %s failed (NODE_FAIL) before the agent "
		                "wrote a result",
		                s->job);
	} else {
		why = xasprintf("Slurm job %s ended %s (reason %s) without a result from the agent",
		                s->job, state, reason != NULL ? reason : "none");
	}
	(void)pull_files(s, true);
	exec_run_ended(r, st, why);
	free(why);
}

static void
query_cb(struct slurm_cmd *c, void *arg)
{
	struct slurm_run *s = arg;
	struct slurm_exec *se = lexec(s->r->ex);
	char *state, *reason, *node, *words;

	s->cmd = NULL;
	s->next_query_ms = mono_ms() + SLURM_QUERY_MS;
	if (s->r->agent_gone || s->r->finished)
		return;
	if (c->status != 0) {
		words = slurm_cmd_words(c, "scontrol");
		if (strstr(words, "Invalid job id") != NULL) {
			/* forgotten (MinJobAge): over, whatever it was */
			ctl_answered(se);
			if (shared_has_result(s))
				exec_agent_gone(s->r, 0);
			else
				end_without_result(s, "FORGOTTEN", NULL);
		} else {
			ctl_failed(se, words); /* evidence of nothing about the job */
		}
		free(words);
		return;
	}
	ctl_answered(se);
	state = slurm_field(buf_cstr(&c->out[0]), "JobState");
	reason = slurm_field(buf_cstr(&c->out[0]), "Reason");
	node = slurm_field(buf_cstr(&c->out[0]), "BatchHost");
	if (node != NULL && s->host == NULL && node[0] != '\0' && strcmp(node, "(null)") != 0) {
		/* where it runs, for eph show and eph runs */
		s->host = xasprintf("%s (job %s)", node, s->job);
		if (write_handle(s) < 0) {
			/* only a nicety lost */
		}
	}
	free(node);
	if (state != NULL && slurm_state_over(state)) {
		/* the agent's result decides, when it wrote one */
		if (shared_has_result(s))
			exec_agent_gone(s->r, 0);
		else
			end_without_result(s, state, reason);
	} else if (s->r->cancel_sent && s->ccmd == NULL &&
	           mono_ms() - s->cancel_at_ms >= SLURM_RECANCEL_MS) {
		s->cancel_step = 0; /* still there: asked again */
		(void)send_cancel(s);
	}
	free(state);
	free(reason);
}

/* squeue's answer about the job named S->name (a run re-attached without its job id): its id,
 * followed from now on; or none (its submission never reached Slurm): recorded lost, unless
 * its agent left a result. */
static void
find_cb(struct slurm_cmd *c, void *arg)
{
	struct slurm_run *s = arg;
	struct slurm_exec *se = lexec(s->r->ex);
	char *words;

	s->cmd = NULL;
	s->next_query_ms = mono_ms() + SLURM_QUERY_MS;
	if (s->r->agent_gone || s->r->finished)
		return;
	if (c->status != 0) {
		words = slurm_cmd_words(c, "squeue");
		ctl_failed(se, words); /* asked again */
		free(words);
		return;
	}
	ctl_answered(se);
	if ((s->job = slurm_job_id(&c->out[0])) != NULL) {
		if (write_handle(s) < 0) {
			/* followed now all the same */
		}
		watch_start(s);
		return;
	}
	if (shared_has_result(s)) {
		exec_agent_gone(s->r, 0);
		return;
	}
	/* an orphaned sbatch may still be on its way: asked again until it cannot be */
	if (s->submit_at > 0 && rundir_now() < s->submit_at + SLURM_SUBMIT_GRACE_S)
		return;
	(void)pull_files(s, true);
	exec_run_ended(s->r, STORE_LOST,
	               "the daemon stopped while submitting the run's job, and Slurm has no job "
	               "of its name");
}

static void
slurm_poll(struct exec_run *r)
{
	struct slurm_run *s = r->backend;
	struct slurm_exec *se = lexec(r->ex);
	char *args[8], *name;

	if (s != NULL && s->job == NULL && s->step == L_SUBMITTED && s->cmd == NULL &&
	    mono_ms() >= s->next_query_ms) {
		name = xasprintf("--name=%s", s->name);
		args[0] = se->squeue;
		args[1] = (char *)"-h";
		args[2] = (char *)"--states=all";
		args[3] = (char *)"-o";
		args[4] = (char *)"%i";
		args[5] = name;
		args[6] = NULL;
		if (cmd_spawn(r, args, find_cb, s, &s->cmd) < 0)
			s->next_query_ms = mono_ms() + SLURM_QUERY_MS;
		free(name);
		return;
	}
	if (s == NULL || s->job == NULL)
		return;
	if (shared_has_result(s)) {
		exec_agent_gone(r, 0); /* the last pull brings it */
		return;
	}
	if (s->cmd != NULL || mono_ms() < s->next_query_ms)
		return;
	args[0] = se->scontrol;
	args[1] = (char *)"-o";
	args[2] = (char *)"show";
	args[3] = (char *)"job";
	args[4] = s->job;
	args[5] = NULL;
	if (cmd_spawn(r, args, query_cb, s, &s->cmd) < 0)
		s->next_query_ms = mono_ms() + SLURM_QUERY_MS;
}

static int
slurm_alive(struct exec_run *r)
{
	struct slurm_run *s = r->backend;

	if (s == NULL || s->job == NULL)
		return -EAGAIN;
	return shared_has_result(s) ? 0 : 1;
}

static void
abandoned_cb(struct slurm_cmd *c, void *arg)
{
	(void)c;
	(void)arg;
}

/* scancel of a job nobody follows (its submission came back after its run ended). */
static void
cmd_spawn_cancel(struct exec_run *r, const char *job)
{
	struct slurm_exec *se = r->ex != NULL ? lexec(r->ex) : NULL;
	char *args[3];

	if (se == NULL)
		return;
	args[0] = se->scancel;
	args[1] = (char *)job;
	args[2] = NULL;
	(void)cmd_spawn(r, args, abandoned_cb, NULL, NULL);
}

static void
cancel_cb(struct slurm_cmd *c, void *arg)
{
	struct slurm_run *s = arg;

	(void)c;
	s->ccmd = NULL;
	if (s->cancel_step == 1 && !s->r->finished)
		(void)send_cancel(s);
}

/* A pending job is cancelled; then a running job's agent is sent SIGTERM (it stops its command
 * and records the run cancelled). Each scancel acts only on a job in its state, so whatever the
 * job turned into between the two, one of them reaches it; a job in neither (configuring, being
 * requeued) is asked again by the tick (query_cb). */
static int
send_cancel(struct slurm_run *s)
{
	struct slurm_exec *se = lexec(s->r->ex);
	char *args[6];
	int n = 0;

	args[n++] = se->scancel;
	if (s->cancel_step == 0) {
		args[n++] = (char *)"--state=PENDING";
	} else {
		args[n++] = (char *)"--batch";
		args[n++] = (char *)"--signal=TERM";
		args[n++] = (char *)"--state=RUNNING";
	}
	args[n++] = s->job;
	args[n] = NULL;
	s->cancel_step = (s->cancel_step + 1) % 2;
	s->cancel_at_ms = mono_ms();
	return cmd_spawn(s->r, args, cancel_cb, s, &s->ccmd);
}

static int
slurm_cancel(struct exec_run *r)
{
	struct slurm_run *s = r->backend;

	if (s == NULL || s->job == NULL)
		return -ESRCH;
	if (s->ccmd != NULL)
		return 0;
	s->cancel_step = 0;
	return send_cancel(s);
}

/* Without a process following it, a run's job cannot be asked about (that takes the loop):
 * the daemon's next start re-attaches it. */
static enum exec_found
slurm_inspect(const struct store_run *row, char **why)
{
	(void)row;
	*why = NULL;
	return EXEC_ALIVE;
}

static int
slurm_reattach(struct exec_run *r, const struct store_run *row)
{
	struct slurm_run *s = backend_of(r);
	const char *dir, *job, *name, *host;
	json_t *hd;

	if (row == NULL || row->handle == NULL || (hd = json_loads(row->handle, 0, NULL)) == NULL)
		return 0; /* nothing to follow it by: lost */
	dir = json_string_value(json_object_get(hd, "dir"));
	job = json_string_value(json_object_get(hd, "job"));
	name = json_string_value(json_object_get(hd, "name"));
	host = json_string_value(json_object_get(hd, "host"));
	s->submit_at = json_number_value(json_object_get(hd, "submit_at")); /* 0 if absent */
	if (dir == NULL || (job == NULL && name == NULL)) {
		json_decref(hd);
		return 0; /* nothing to follow it by: lost */
	}
	s->rdir = xstrdup(dir);
	/* without a job id (stopped while sbatch was out): found by its name (find_cb) */
	s->job = job != NULL ? xstrdup(job) : NULL;
	s->name = xstrdup(name != NULL ? name : "");
	s->host = host != NULL ? xstrdup(host) : NULL;
	json_decref(hd);
	s->step = L_SUBMITTED;
	if (s->job != NULL)
		watch_start(s);
	return -EAGAIN; /* the tick asks Slurm */
}

/* A recorded run's shared directory, removed by the thread pool. */
struct rdir_removal {
	uv_work_t work;
	char *path;
};

static void
rdir_remove_work(uv_work_t *w)
{
	struct rdir_removal *rm = w->data;

	if (treecopy_remove(rm->path) < 0) {
		/* left behind: a later look at the shared directory finds it */
	}
}

static void
rdir_removed(uv_work_t *w, int status)
{
	struct rdir_removal *rm = w->data;

	(void)status;
	free(rm->path);
	free(rm);
}

static void
slurm_teardown(struct exec_run *r)
{
	struct slurm_run *s = r->backend;

	if (s == NULL)
		return;
	/* what is in flight ends on its own, but eph pack (git, pip: minutes) is stopped; a
	 * submission still settles its job */
	if (s->cmd != NULL) {
		s->cmd->cb = NULL;
		if (!s->cmd->submit && !s->cmd->exited)
			(void)uv_process_kill(&s->cmd->proc, SIGTERM);
	}
	if (s->ccmd != NULL)
		s->ccmd->cb = NULL;
	if (s->copy != NULL)
		((struct agent_copy *)s->copy->data)->s = NULL;
	if (s->watch != NULL)
		uv_close((uv_handle_t *)s->watch, watch_closed);
	/* recorded: the shared run directory has given everything; it goes off the loop (a
	 * results/ tree on a network file system takes its time) */
	if (r->recorded && s->rdir != NULL) {
		struct rdir_removal *rm = xcalloc(1, sizeof(*rm));

		rm->path = s->rdir;
		s->rdir = NULL;
		rm->work.data = rm;
		if (uv_queue_work(r->loop, &rm->work, rdir_remove_work, rdir_removed) < 0) {
			rdir_remove_work(&rm->work);
			rdir_removed(&rm->work, 0);
		}
	}
	free(s->rdir);
	free(s->name);
	free(s->job);
	free(s->host);
	free(s);
	r->backend = NULL;
}

/* --- the executor ----------------------------------------------------------------------- */

/* Slurm queues: every run is handed to it at once. */
static bool
slurm_fits(struct executor *ex, uint64_t memory)
{
	(void)ex;
	(void)memory;
	return true;
}

static void
slurm_reserve(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	(void)ex;
	(void)memory;
	(void)backend_of(r);
}

static void
slurm_release(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	(void)ex;
	(void)r;
	(void)memory;
}

static void
settings_free(struct slurm_exec *se)
{
	free(se->base);
	free(se->partition);
	free(se->account);
	free(se->qos);
	for (size_t i = 0; i < se->nextra; i++)
		free(se->extra[i]);
	free(se->extra);
	free(se->sbatch);
	free(se->squeue);
	free(se->scontrol);
	free(se->scancel);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static int
slurm_configure(struct executor *ex, const struct conf *c, const struct conf_executor *ce,
                struct diag *d)
{
	const struct conf_slurm *set = conf_executor_slurm(ce);
	struct slurm_exec *se = ex->state;
	char *base;

	(void)c;
	if (set == NULL || set->shared_dir == NULL) {
		diag_error(d, (struct diag_pos){ 0 }, "executor \"%s\": no slurm settings",
		           ce->name);
		return -EINVAL;
	}
	base = xasprintf("%s/%s", set->shared_dir,
	                 ex->instance[0] != '\0' ? ex->instance : "default");
	if (se == NULL) {
		se = xcalloc(1, sizeof(*se));
		se->ex = ex;
		ex->state = se;
	} else {
		if (strcmp(se->base, base) != 0)
			se->agent_copied = false;
		settings_free(se);
	}
	se->base = base;
	se->partition = dup_or_null(set->partition);
	se->account = dup_or_null(set->account);
	se->qos = dup_or_null(set->qos);
	se->nextra = set->extra_args.n;
	se->extra = se->nextra > 0 ? xcalloc(se->nextra, sizeof(char *)) : NULL;
	for (size_t i = 0; i < se->nextra; i++)
		se->extra[i] = xstrdup(set->extra_args.v[i]);
	se->sbatch = xstrdup(set->sbatch);
	se->squeue = xstrdup(set->squeue);
	se->scontrol = xstrdup(set->scontrol);
	se->scancel = xstrdup(set->scancel);
	se->time_grace = set->time_grace;
	se->down_after = set->down_after;
	ex->max_wait = 0; /* Slurm's queue is the wait */
	return 0;
}

static void
slurm_stop(struct executor *ex)
{
	struct slurm_exec *se = ex->state;

	if (se == NULL)
		return;
	se->stopping = true;
	probe_end(se);
}

static void
slurm_destroy(struct executor *ex)
{
	struct slurm_exec *se = ex->state;

	if (se == NULL)
		return;
	ex->state = NULL;
	se->dead = true;
	probe_end(se);
	if (se->nops == 0) {
		settings_free(se);
		free(se);
	}
}

const struct exec_ops exec_slurm_ops = {
	.name = "slurm",
	.fits = slurm_fits,
	.reserve = slurm_reserve,
	.release = slurm_release,
	.configure = slurm_configure,
	.destroy = slurm_destroy,
	.stop = slurm_stop,
	.provision = slurm_provision,
	.start = slurm_start,
	.cancel = slurm_cancel,
	.poll = slurm_poll,
	.alive = slurm_alive,
	.inspect = slurm_inspect,
	.reattach = slurm_reattach,
	.pull = slurm_pull,
	.teardown = slurm_teardown,
};
