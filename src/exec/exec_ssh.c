/* src/exec/exec_ssh.c: the ssh executor: existing servers as a pool (docs/remote.md).
 *
 * A run is placed on a host whose memory, minus what the runs already there reserved, fits it
 * (best fit: the big holes stay for the big runs). Its provision, all on the loop:
 *   contact   once per connection to its host (`hello`): the remote directory
 *             DIR/<instance> made and made absolute, the host's python3 version, the runs
 *             directories there, then its clock (remote_clock);
 *   pack      `eph pack RUN_DIR --python-version X.Y --json`, a child: the commit's archive
 *             and the requirements' wheels, made on this machine (blocking work: git, pip);
 *   ship      the agent, the archive and each wheel to DIR/<instance>/files/<sha256>, each
 *             only when absent (remote_ship);
 *   start     one ssh writes the run's spec.json (this machine's, with the host's paths and
 *             clock offset), links its wheels, and starts `eph-agent --detach RUN`, which
 *             prints the agent's pid. The run's handle (host, remote directory, agent) is in
 *             the store before that ssh runs, so a restart finds the run wherever it got to.
 * Then every tick one ssh asks the agent how the run is and how long its files are, and what
 * is new of output.log and events.jsonl is fetched by byte offset (this machine's copies'
 * sizes are the offsets: nothing twice, nothing lost across a dropped connection or a
 * restart). Once the agent is gone, the last pull brings the rest and result.json, and the
 * remote run directory is removed once the run is recorded.
 *
 * A host that does not answer is tried again with backoff; once it has not answered a run's
 * polls for lost_after, that run is recorded `lost`, and its memory stays reserved on the host
 * until the host answers again: then its agent is stopped, what it left is logged, and its
 * directory removed. Hosts going down and coming back are told to the owner (ex->health).
 *
 * Every op a run has in flight is counted in R->handles_open; the backend itself counts one,
 * closed when it is freed (teardown, once nothing is in flight). Host-wide ops (contact,
 * removal, the sweep of lost runs) belong to the executor, which is freed once they end. */
#include "exec/exec_ssh_int.h"

static void run_pack(struct ssh_run *s);
static void run_ship_next(struct ssh_run *s);

/* --- the run's backend: freed once nothing is in flight ---------------------------------- */

void
ssh_run_maybe_free(struct ssh_run *s)
{
	struct exec_run *r = s->r;

	if (!s->torn || s->freed || s->op != NULL || s->cop != NULL || s->pack_open > 0 ||
	    s->retry_open)
		return;
	s->freed = true;
	for (size_t i = 0; i < s->nship; i++) {
		free(s->ship_local[i]);
		free(s->ship_remote[i]);
		free(s->ship_name[i]);
	}
	free(s->ship_local);
	free(s->ship_remote);
	free(s->ship_name);
	free(s->rdir);
	free(s->agent);
	exec_secrets_wipe(s->sblob, s->slen);
	buf_free(&s->pack_buf);
	free(s);
	r->backend = NULL;
	exec_handle_closed(r); /* may free R */
}

struct remote_req
ssh_run_req(struct ssh_run *s, int64_t timeout_ms, remote_cb cb)
{
	return (struct remote_req){ s->r->loop, ssh_of_host(s->h), &s->h->rh, timeout_ms, cb, s };
}

/* The run's provision ends: RC 0 (the agent runs), or failed with WHY. */
static void
prov_end(struct ssh_run *s, int rc, const char *why)
{
	exec_provisioned_fn *done = s->prov_done;

	s->prov_done = NULL;
	if (done != NULL && !s->torn)
		done(s->r, rc, why);
}

/* The op of a provision step ended with RES: whether it went well and the run goes on (the
 * run torn down meanwhile is freed once nothing is in flight; a failure ends the provision
 * with its reason, and tells the host's health when the host did not answer). */
static bool
prov_op_ok(struct ssh_run *s, const struct remote_result *res)
{
	char *why;

	s->op = NULL;
	if (s->torn) {
		ssh_run_maybe_free(s);
		return false;
	}
	if (res->fail == REMOTE_OK)
		return true;
	if (ssh_fail_is_down(res->fail))
		ssh_host_failed(s->h, res->why);
	why = ssh_reason(res);
	prov_end(s, -EIO, why);
	free(why);
	return false;
}

/* --- provision ------------------------------------------------------------------------- */

static void
ssh_provision(struct exec_run *r, exec_provisioned_fn *done)
{
	struct ssh_run *s = r->backend;
	struct ssh_exec *se = sexec(r->ex);

	s->prov_done = done;
	s->prov_t0 = rundir_now();
	if (s->h == NULL) {
		done(r, -EHOSTUNREACH, "the executor has no host");
		return;
	}
	if (se->set.known_hosts == NULL && !s->h->cloud) {
		done(r, -EINVAL, "the executor has no known_hosts");
		return;
	}
	s->step = S_CONTACT;
	s->last_ok_ms = mono_ms();
	if (s->h->st == H_UP) {
		ssh_run_contacted(s, 0, NULL);
		return;
	}
	s->wnext = s->h->waiters;
	s->h->waiters = s;
	ssh_host_contact(s->h);
}

/* The contact with S's host is made (RC 0) or failed (RC < 0, WHY). */
void
ssh_run_contacted(struct ssh_run *s, int rc, const char *why)
{
	struct ssh_exec *se = sexec(s->r->ex);
	char *msg;

	if (s->torn)
		return;
	if (rc == -EAGAIN && mono_ms() - s->last_ok_ms < se->set.lost_after * 1000) {
		/* not answering: wait for it (ssh_host_contact tries again, with backoff) */
		s->wnext = s->h->waiters;
		s->h->waiters = s;
		ssh_host_contact(s->h);
		return;
	}
	if (rc < 0) {
		msg = rc == -EAGAIN ? xasprintf("%s has not answered for %llds: %s", s->h->key,
		                                (long long)se->set.lost_after, why)
		                    : xstrdup(why != NULL ? why : strerror(-rc));
		prov_end(s, rc, msg);
		free(msg);
		return;
	}
	run_pack(s);
}

static void
pack_closed(uv_handle_t *hd)
{
	struct ssh_run *s = hd->data;

	s->pack_open--;
	ssh_run_maybe_free(s);
}

/* Adds a file to ship: LOCAL, named NAME in the run (NULL: none). */
static void
ship_add(struct ssh_run *s, const char *local, const char *name)
{
	s->ship_local = xreallocarray(s->ship_local, s->nship + 1, sizeof(char *));
	s->ship_remote = xreallocarray(s->ship_remote, s->nship + 1, sizeof(char *));
	s->ship_name = xreallocarray(s->ship_name, s->nship + 1, sizeof(char *));
	s->ship_local[s->nship] = xstrdup(local);
	s->ship_remote[s->nship] = NULL;
	s->ship_name[s->nship] = name != NULL ? xstrdup(name) : NULL;
	s->nship++;
}

/* eph pack answered: what to ship, or why the run fails. */
static void
pack_answer(struct ssh_run *s)
{
	json_t *o = json_loadb(s->pack_buf.data, s->pack_buf.len, 0, NULL), *f, *v;
	const char *err, *archive;
	char exe[PATH_MAX], *slash, *agent;
	size_t len = sizeof(exe), i;

	if (o == NULL || !json_is_object(o)) {
		char *why = xasprintf("eph pack gave no answer (status %lld)",
		                      (long long)s->pack_status);

		prov_end(s, -EIO, why);
		free(why);
		json_decref(o);
		return;
	}
	if ((err = json_string_value(json_object_get(o, "error"))) != NULL) {
		const char *fl = json_string_value(json_object_get(o, "failure"));
		enum rundir_failure fr = RUNDIR_FAILURE_NONE;
		char *why;

		if (fl == NULL || rundir_failure_parse(fl, &fr) < 0)
			fr = RUNDIR_FAILURE_SOURCE;
		why = rundir_failure_reason(fr, err);
		prov_end(s, -EIO, why);
		free(why);
		json_decref(o);
		return;
	}
	archive = json_string_value(json_object_get(o, "archive"));
	if (uv_exepath(exe, &len) < 0 || archive == NULL) {
		prov_end(s, -EIO,
		         archive == NULL ? "eph pack gave no archive"
		                         : "cannot find this program's own path");
		json_decref(o);
		return;
	}
	slash = strrchr(exe, '/');
	agent = xasprintf("%.*s/eph-agent", (int)(slash - exe), exe);
	ship_add(s, agent, NULL);
	free(agent);
	ship_add(s, archive, NULL);
	f = json_object_get(o, "files");
	json_array_foreach(f, i, v)
	{
		const char *path = json_string_value(json_object_get(v, "path"));
		const char *name = json_string_value(json_object_get(v, "name"));

		if (path != NULL && name != NULL && strchr(name, '/') == NULL) {
			ship_add(s, path, name);
			s->has_wheels = true;
		}
	}
	json_decref(o);
	s->step = S_SHIP;
	s->ship_i = 0;
	run_ship_next(s);
}

static void
pack_exit(uv_process_t *p, int64_t status, int sig)
{
	struct ssh_run *s = p->data;

	s->pack_exited = true;
	s->pack_status = sig != 0 ? -sig : status;
	uv_close((uv_handle_t *)p, pack_closed);
	if (s->pack_eof && !s->torn) /* its output is all read */
		pack_answer(s);
}

static void
pack_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
	(void)hd;
	(void)hint;
	b->base = xmalloc(64 << 10);
	b->len = 64 << 10;
}

static void
pack_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct ssh_run *s = st->data;

	if (n > 0 && buf_append(&s->pack_buf, b->base, (size_t)n) < 0)
		n = UV_ENOBUFS;
	free(b->base);
	if (n >= 0)
		return;
	s->pack_eof = true;
	uv_close((uv_handle_t *)st, pack_closed);
	if (s->pack_exited && !s->torn)
		pack_answer(s);
}

/* Spawns `eph pack RUN_DIR [--python-version X.Y] --json`: the archive and wheels to ship. */
static void
run_pack(struct ssh_run *s)
{
	struct exec_run *r = s->r;
	char exe[PATH_MAX], *args[7];
	size_t len = sizeof(exe);
	uv_process_options_t o = { 0 };
	uv_stdio_container_t io[3];
	int n = 0, rc;

	s->step = S_PACK;
	if ((rc = uv_exepath(exe, &len)) < 0) {
		prov_end(s, rc, "cannot find this program's own path");
		return;
	}
	args[n++] = exe;
	args[n++] = (char *)"pack";
	args[n++] = r->dir;
	if (s->h->python != NULL) {
		args[n++] = (char *)"--python-version";
		args[n++] = s->h->python;
	}
	args[n++] = (char *)"--json";
	args[n] = NULL;
	uv_pipe_init(r->loop, &s->pack_out, 0);
	s->pack_out.data = s;
	s->pack.data = s;
	s->pack_open = 2;
	io[0].flags = UV_IGNORE;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&s->pack_out;
	io[2].flags = UV_INHERIT_FD; /* its complaints go where ours go */
	io[2].data.fd = 2;
	o.file = exe;
	o.args = args;
	o.exit_cb = pack_exit;
	o.stdio = io;
	o.stdio_count = 3;
	rc = uv_spawn(r->loop, &s->pack, &o);
	if (rc < 0) {
		uv_close((uv_handle_t *)&s->pack, pack_closed);
		uv_close((uv_handle_t *)&s->pack_out, pack_closed);
		prov_end(s, rc, "cannot run eph pack");
		return;
	}
	uv_read_start((uv_stream_t *)&s->pack_out, pack_alloc, pack_read);
}

static void ship_cb(struct remote_op *op, const struct remote_result *res, void *data);
static void run_start_agent(struct ssh_run *s);

static void
run_ship_next(struct ssh_run *s)
{
	struct remote_req q = ssh_run_req(s, SSH_SHIP_MS, ship_cb);
	char *files;
	int rc;

	if (s->ship_i == s->nship) {
		run_start_agent(s);
		return;
	}
	files = xasprintf("%s/files", s->h->abs);
	rc = remote_ship(&q, s->ship_local[s->ship_i], files, &s->op);
	free(files);
	if (rc < 0)
		prov_end(s, rc, "cannot ship the run's files");
}

static void
ship_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct ssh_run *s = data;

	(void)op;
	if (!prov_op_ok(s, res))
		return;
	s->ship_remote[s->ship_i] = xstrdup(res->remote_path);
	s->ship_i++;
	run_ship_next(s);
}

/* The handle: what finds the run again after a restart, whatever executor settings then. */
static int
run_write_handle(struct ssh_run *s, pid_t pid)
{
	struct ssh_exec *se = sexec(s->r->ex);
	json_t *o = json_object();
	char *text;
	int rc;

	json_object_set_new(o, "type", json_string(s->r->ex->ops->name));
	json_object_set_new(o, "host", json_string(s->h->key));
	json_object_set_new(o, "dir", json_string(s->rdir));
	json_object_set_new(o, "agent", json_string(s->agent));
	json_object_set_new(o, "clock_offset", json_real(s->h->clock_offset));
	if (ssh_of_host(s->h)->known_hosts != NULL)
		json_object_set_new(o, "known_hosts", json_string(ssh_of_host(s->h)->known_hosts));
	if (ssh_of_host(s->h)->identity_file != NULL)
		json_object_set_new(o, "identity_file",
		                    json_string(ssh_of_host(s->h)->identity_file));
	if (se->handle_extra != NULL)
		se->handle_extra(s, o);
	if (pid > 0)
		json_object_set_new(o, "pid", json_integer(pid));
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	rc = exec_run_set_handle(s->r, text);
	free(text);
	return rc;
}

/* The run's spec as the host reads it: the host's paths, no scheduler's path, its clock.
 * Caller frees. NULL with *WHY (caller frees) when this machine's cannot be read. */
static char *
remote_spec(struct ssh_run *s, char **why)
{
	struct rundir_spec sp;
	struct diag d;
	char *tmpdir, *path, *text = NULL;
	int rc;

	diag_init(&d);
	if (rundir_spec_read(s->r->dir, &sp, &d) < 0) {
		*why = diag_nerrors(&d) > 0 ? diag_format(&d, 0) : xstrdup("cannot read spec.json");
		diag_free(&d);
		return NULL;
	}
	diag_free(&d);
	free(sp.state_dir);
	sp.state_dir = xstrdup(s->h->abs);
	free(sp.source.mirror);
	sp.source.mirror = NULL;
	free(sp.source.archive);
	sp.source.archive = xstrdup(s->ship_remote[1]);
	free(sp.runtime.wheels);
	sp.runtime.wheels = s->has_wheels ? xasprintf("%s/wheels", s->rdir) : NULL;
	sp.clock_offset = s->h->clock_offset;
	/* written where the run's own files are: what was shipped stays with the run */
	tmpdir = xasprintf("%s/remote", s->r->dir);
	rc = fsio_mkdirs(tmpdir, 0700);
	if (rc == 0)
		rc = rundir_spec_write(tmpdir, &sp);
	rundir_spec_free(&sp);
	if (rc == 0) {
		struct buf b;

		buf_init(&b, 4u << 20);
		path = xasprintf("%s/%s", tmpdir, RUNDIR_SPEC);
		rc = fsio_read_file(path, &b);
		free(path);
		if (rc == 0)
			text = buf_steal(&b);
		buf_free(&b);
	}
	if (rc < 0)
		*why = xasprintf("cannot write the host's spec.json: %s", strerror(-rc));
	free(tmpdir);
	return text;
}

static void start_cb(struct remote_op *op, const struct remote_result *res, void *data);

static void
run_start_agent(struct ssh_run *s)
{
	struct remote_req q = ssh_run_req(s, SSH_START_MS, start_cb);
	char *spec, *why = NULL, *qr, *qa;
	struct buf cmd;
	int rc;

	s->step = S_START;
	s->rdir = xasprintf("%s/runs/%lld", s->h->abs, (long long)s->r->id);
	s->agent = xstrdup(s->ship_remote[0]);
	/* the secrets, read now, right before the start: nothing is started without them */
	if ((rc = exec_secrets_read(&s->r->secrets, &s->sblob, &s->slen, &why)) < 0) {
		prov_end(s, rc, why);
		free(why);
		return;
	}
	if ((spec = remote_spec(s, &why)) == NULL) {
		prov_end(s, -EIO, why);
		free(why);
		return;
	}
	/* in the store before the agent can exist: a restart finds it wherever it got to */
	if ((rc = run_write_handle(s, 0)) < 0) {
		free(spec);
		prov_end(s, rc, "cannot record the run's handle");
		return;
	}
	qr = remote_quote(s->rdir);
	qa = remote_quote(s->agent);
	buf_init(&cmd, 1u << 20);
	rc = buf_printf(&cmd,
	                "set -e; umask 077; r=%s; mkdir -p \"$r/wheels\"; "
	                "cat >\"$r/spec.json.tmp\"; mv -f \"$r/spec.json.tmp\" \"$r/spec.json\"; ",
	                qr);
	for (size_t i = 2; rc == 0 && i < s->nship; i++) {
		char *qf = remote_quote(s->ship_remote[i]), *qn = remote_quote(s->ship_name[i]);

		rc = buf_printf(&cmd, "ln -f %s \"$r/wheels\"/%s; ", qf, qn);
		free(qf);
		free(qn);
	}
	/* what the run uses counts as used now (the contact removes what is long unused) */
	for (size_t i = 0; rc == 0 && i < s->nship; i++) {
		char *qf = remote_quote(s->ship_remote[i]);

		rc = buf_printf(&cmd, "touch -c %s; ", qf);
		free(qf);
	}
	/* with secrets, the agent is started by a second ssh, the blob on its stdin
	 * (run_start_detach) */
	if (rc == 0)
		rc = s->sblob != NULL ? buf_puts(&cmd, "true")
		                      : buf_printf(&cmd, "exec %s --detach \"$r\"", qa);
	free(qr);
	free(qa);
	if (rc == 0)
		rc = remote_run(&q, buf_cstr(&cmd), spec, strlen(spec), 0, &s->op);
	buf_free(&cmd);
	free(spec);
	if (rc < 0)
		prov_end(s, rc, "cannot start the agent");
}

/* The spec is on the host: the second ssh starts the agent with the secrets' blob on its
 * stdin, which `eph-agent --detach` pipes to the agent (never into a file). */
static void
run_start_detach(struct ssh_run *s)
{
	struct remote_req q = ssh_run_req(s, SSH_START_MS, start_cb);
	char *qr = remote_quote(s->rdir), *qa = remote_quote(s->agent);
	char *cmd = xasprintf("exec %s --detach %s", qa, qr);
	int rc;

	s->spec_sent = true;
	rc = remote_run(&q, cmd, s->sblob, s->slen, 0, &s->op);
	/* the op holds its own copy, wiped when it is freed */
	exec_secrets_wipe(s->sblob, s->slen);
	s->sblob = NULL;
	s->slen = 0;
	free(cmd);
	free(qr);
	free(qa);
	if (rc < 0)
		prov_end(s, rc, "cannot start the agent");
}

static void
start_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct ssh_run *s = data;
	char *end;
	long pid;

	(void)op;
	if (!prov_op_ok(s, res))
		return;
	if (s->sblob != NULL && !s->spec_sent) {
		run_start_detach(s);
		return;
	}
	pid = strtol(res->out, &end, 10);
	if (pid <= 0 || (*end != '\n' && *end != '\0')) {
		prov_end(s, -EPROTO, "the agent's start said no pid");
		return;
	}
	s->r->agent_pid = (pid_t)pid;
	s->step = S_RUNNING;
	s->last_ok_ms = mono_ms();
	ssh_stream_start(s);
	(void)run_write_handle(s, (pid_t)pid);
	{
		double now = rundir_now();
		struct store_phase ph = { (char *)"ship", s->prov_t0, now, now - s->prov_t0 };

		int prc = store_phase_add(s->r->store, s->r->id, &ph);

		(void)prc; /* its phase is a nicety: the run goes on without it */
	}
	prov_end(s, 0, NULL);
}

/* The agent was started by provision: nothing is left to do. */
static int
ssh_start(struct exec_run *r)
{
	struct ssh_run *s = r->backend;

	return s != NULL && s->step == S_RUNNING ? 0 : -EINVAL;
}

/* The stream brings the bytes as they come: a pull has nothing to add. The last one comes
 * after the stream's end, which brought everything. */
static void
ssh_pull(struct exec_run *r, bool last, exec_pulled_fn *done)
{
	(void)last;
	done(r, 0);
}

/* Liveness comes with the stream: nothing more to ask. */
static void
ssh_poll(struct exec_run *r)
{
	(void)r;
}

static int
ssh_alive(struct exec_run *r)
{
	struct ssh_run *s = r->backend;

	if (s == NULL || s->step != S_RUNNING)
		return -EAGAIN;
	return 1; /* as far as the stream says: its end says otherwise */
}

static void
cancel_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct ssh_run *s = data;

	(void)op;
	s->cop = NULL;
	if (s->torn) {
		ssh_run_maybe_free(s);
		return;
	}
	if (res->fail == REMOTE_OK)
		s->cancel_wanted = false; /* sent (or the agent was gone already) */
}

int
ssh_run_send_cancel(struct ssh_run *s)
{
	struct remote_req q = ssh_run_req(s, SSH_STATUS_MS, cancel_cb);
	char *qr = remote_quote(s->rdir), *qa = remote_quote(s->agent), *cmd;
	int rc;

	cmd = xasprintf("%s --cancel %s", qa, qr);
	rc = remote_run(&q, cmd, NULL, 0, 4096, &s->cop);
	free(cmd);
	free(qr);
	free(qa);
	return rc;
}

static int
ssh_cancel(struct exec_run *r)
{
	struct ssh_run *s = r->backend;

	if (s == NULL || s->step != S_RUNNING || s->agent == NULL)
		return -ESRCH;
	s->cancel_wanted = true;
	if (s->cop != NULL)
		return 0;
	return ssh_run_send_cancel(s);
}

/* Without a network, nothing can be told of a remote run: its executor finds out, followed. */
static enum exec_found
ssh_inspect(const struct store_run *row, char **why)
{
	(void)row;
	*why = NULL;
	return EXEC_ALIVE;
}

static int
ssh_reattach(struct exec_run *r, const struct store_run *row)
{
	struct ssh_run *s = r->backend;
	json_t *hd;
	const char *dir, *agent;

	if (s == NULL || s->h == NULL || row == NULL || row->handle == NULL ||
	    (hd = json_loads(row->handle, 0, NULL)) == NULL)
		return 0; /* nothing to follow it by: lost */
	dir = json_string_value(json_object_get(hd, "dir"));
	agent = json_string_value(json_object_get(hd, "agent"));
	if (dir == NULL || agent == NULL) {
		json_decref(hd);
		return 0;
	}
	s->rdir = xstrdup(dir);
	s->agent = xstrdup(agent);
	r->agent_pid = (pid_t)json_integer_value(json_object_get(hd, "pid"));
	json_decref(hd);
	s->step = S_RUNNING;
	s->last_ok_ms = mono_ms(); /* lost_after counts from now: the daemon was not looking */
	ssh_stream_start(s);
	return -EAGAIN; /* the stream tells */
}

static void
ssh_teardown(struct exec_run *r)
{
	struct ssh_run *s = r->backend;

	if (s == NULL || s->torn)
		return;
	s->torn = true;
	if (s->step == S_CONTACT && s->h != NULL) {
		struct ssh_run **pp = &s->h->waiters;

		while (*pp != NULL && *pp != s)
			pp = &(*pp)->wnext;
		if (*pp != NULL)
			*pp = s->wnext;
	}
	if (s->op != NULL)
		remote_op_cancel(s->op);
	if (s->cop != NULL)
		remote_op_cancel(s->cop);
	if (s->pack_open > 0 && !s->pack_exited)
		(void)uv_process_kill(&s->pack, SIGTERM);
	if (s->retry_open)
		uv_close((uv_handle_t *)&s->retry, ssh_run_retry_closed);
	/* recorded (not merely detached by a stop): its directory there goes, unless the host
	 * could not be reached (lost: the sweep removes it when the host answers again) */
	if (r->recorded && !s->lost && s->rdir != NULL && s->h != NULL && !s->h->cloud)
		ssh_host_remove(s->h, r->id, s->rdir, s->agent, false);
	ssh_run_maybe_free(s);
}

const struct exec_ops exec_ssh_ops = {
	.name = "ssh",
	.fits = ssh_fits,
	.reserve = ssh_reserve,
	.release = ssh_release,
	.configure = ssh_configure,
	.destroy = ssh_destroy,
	.stop = ssh_stop,
	.provision = ssh_provision,
	.start = ssh_start,
	.cancel = ssh_cancel,
	.poll = ssh_poll,
	.alive = ssh_alive,
	.inspect = ssh_inspect,
	.reattach = ssh_reattach,
	.pull = ssh_pull,
	.teardown = ssh_teardown,
};
