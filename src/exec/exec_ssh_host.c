/* src/exec/exec_ssh_host.c: the ssh executor's hosts: its settings, placement by memory,
 * the contact made once per connection (directory, python3 version, clock), health, and
 * the removal of run directories there. The runs themselves: exec_ssh.c. */
#include "exec/exec_ssh_int.h"

static void host_retry_cb(uv_timer_t *t);
static void host_sweep(struct ssh_host *h, const char *listing);

/* A failure of ssh as a run's reason: a changed host key is its own failure ("host key: ..."),
 * anything else a provision's. Caller frees. */
char *
ssh_reason(const struct remote_result *res)
{
	if (res->fail == REMOTE_HOST_KEY)
		return rundir_failure_reason(RUNDIR_FAILURE_HOST_KEY, res->why);
	return xstrdup(res->why != NULL ? res->why : remote_fail_name(res->fail));
}

/* --- settings --------------------------------------------------------------------------- */

static void
set_free(struct conf_ssh *c)
{
	for (size_t i = 0; i < c->nhosts; i++) {
		free(c->hosts[i].text);
		remote_host_clear(&c->hosts[i].host);
	}
	free(c->hosts);
	free(c->identity_file);
	free(c->known_hosts);
	free(c->dir);
	memset(c, 0, sizeof(*c));
}

static void
set_copy(struct conf_ssh *to, const struct conf_ssh *from)
{
	*to = *from;
	to->hosts = xcalloc(from->nhosts + 1, sizeof(*to->hosts));
	for (size_t i = 0; i < from->nhosts; i++) {
		const struct remote_host *rh = &from->hosts[i].host;

		to->hosts[i] = from->hosts[i];
		to->hosts[i].text = xstrdup(from->hosts[i].text);
		to->hosts[i].host.user = rh->user != NULL ? xstrdup(rh->user) : NULL;
		to->hosts[i].host.addr = xstrdup(rh->addr);
	}
	to->identity_file = from->identity_file != NULL ? xstrdup(from->identity_file) : NULL;
	to->known_hosts = from->known_hosts != NULL ? xstrdup(from->known_hosts) : NULL;
	to->dir = xstrdup(from->dir != NULL ? from->dir : "~/.ephemeron");
}

/* The directory of ssh's master sockets: STATE/ssh when short enough for a socket's path,
 * else one under /tmp named after the state directory. Caller frees. */
static char *
control_dir_for(const char *state_dir)
{
	uint8_t d[SHA256_DIGEST_SIZE];
	struct sha256_ctx c;
	char *p = xasprintf("%s/ssh", state_dir);

	if (strlen(p) <= REMOTE_CONTROL_DIR_MAX)
		return p;
	free(p);
	sha256_init(&c);
	sha256_update(&c, strlen(state_dir), (const uint8_t *)state_dir);
	sha256_digest(&c, sizeof(d), d);
	return xasprintf("/tmp/eph-ssh-%u-%02x%02x%02x%02x%02x%02x", (unsigned)getuid(), d[0], d[1],
	                 d[2], d[3], d[4], d[5]);
}

static struct ssh_host *
host_find(struct ssh_exec *se, const char *key)
{
	for (size_t i = 0; i < se->nhosts; i++)
		if (strcmp(se->hosts[i]->key, key) == 0)
			return se->hosts[i];
	return NULL;
}

struct ssh_host *
ssh_host_add(struct ssh_exec *se, const struct remote_host *rh)
{
	struct ssh_host *h = xcalloc(1, sizeof(*h));

	h->se = se;
	h->rh.user = rh->user != NULL ? xstrdup(rh->user) : NULL;
	h->rh.addr = xstrdup(rh->addr);
	h->rh.port = rh->port;
	h->key = remote_host_str(&h->rh);
	se->hosts = xreallocarray(se->hosts, se->nhosts + 1, sizeof(*se->hosts));
	se->hosts[se->nhosts++] = h;
	return h;
}

static void
host_free_one(struct ssh_host *h)
{
	free(h->key);
	remote_host_clear(&h->rh);
	free(h->abs);
	free(h->python);
	free(h->down_why);
	free((char *)h->own_ssh.identity_file);
	free((char *)h->own_ssh.known_hosts);
	free((char *)h->own_ssh.control_dir);
	free(h);
}

void
ssh_host_forget(struct ssh_exec *se, struct ssh_host *h)
{
	if (!h->cloud || h->retry_open || h->st == H_HELLO || h->waiters != NULL || h->lost != NULL)
		return;
	for (size_t i = 0; i < se->nhosts; i++) {
		if (se->hosts[i] == h) {
			se->hosts[i] = se->hosts[--se->nhosts];
			host_free_one(h);
			return;
		}
	}
}

int
ssh_configure(struct executor *ex, const struct conf *c, const struct conf_executor *ce,
              struct diag *d)
{
	const struct conf_ssh *cs = ce->keys;
	struct ssh_exec *se = ex->state;
	int rc;

	(void)c;
	if (se == NULL) {
		se = xcalloc(1, sizeof(*se));
		se->ex = ex;
		se->control_dir = control_dir_for(ex->state_dir);
		ex->state = se;
	}
	if (cs == NULL) /* made for runs whose executor left the file: their handles say all */
		return 0;
	rc = fsio_mkdirs(se->control_dir, 0700);
	if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "cannot make %s: %s", se->control_dir,
		           strerror(-rc));
		return rc;
	}
	set_free(&se->set);
	set_copy(&se->set, cs);
	se->ssh = (struct remote_ssh){ .identity_file = se->set.identity_file,
		                       .known_hosts = se->set.known_hosts,
		                       .control_dir = se->control_dir,
		                       .connect_timeout = (int)se->set.connect_timeout };
	ex->max_wait = se->set.max_wait;
	for (size_t i = 0; i < se->nhosts; i++)
		se->hosts[i]->configured = false;
	for (size_t i = 0; i < se->set.nhosts; i++) {
		const struct conf_ssh_host *ch = &se->set.hosts[i];
		char *key = remote_host_str(&ch->host);
		struct ssh_host *h = host_find(se, key);

		free(key);
		if (h == NULL)
			h = ssh_host_add(se, &ch->host);
		h->memory = ch->memory;
		h->configured = true;
	}
	return 0;
}

static void
lost_free(struct ssh_lost *l)
{
	free(l->rdir);
	free(l->agent);
	free(l);
}

static void
se_free(struct ssh_exec *se)
{
	for (size_t i = 0; i < se->nhosts; i++) {
		struct ssh_host *h = se->hosts[i];

		while (h->lost != NULL) {
			struct ssh_lost *l = h->lost;

			h->lost = l->next;
			lost_free(l);
		}
		host_free_one(h);
	}
	free(se->hosts);
	set_free(&se->set);
	free(se->control_dir);
	free(se);
}

void
ssh_destroy(struct executor *ex)
{
	struct ssh_exec *se = sexec(ex);

	if (se == NULL)
		return;
	if (!se->stopping)
		ssh_stop(ex); /* retired at a reload: its timers close, its connections end */
	ex->state = NULL;
	se->ex = NULL;
	se->dead = true;
	if (se->nops == 0)
		se_free(se);
}

/* A host op has ended: the executor, destroyed meanwhile, is freed after the last. Returns
 * whether SE is gone. */
static bool
se_op_done(struct ssh_exec *se)
{
	se->nops--;
	if (se->dead && se->nops == 0) {
		se_free(se);
		return true;
	}
	return se->dead;
}

/* --- health ---------------------------------------------------------------------------- */

bool
ssh_fail_is_down(enum remote_fail f)
{
	return f == REMOTE_UNREACHABLE || f == REMOTE_TIMEOUT || f == REMOTE_SSH;
}

void
ssh_host_answered(struct ssh_host *h)
{
	struct ssh_exec *se = h->se;

	h->fails = 0;
	h->next_try_ms = 0;
	if (h->down_since > 0 && h->down_told && se->ex != NULL && se->ex->health != NULL)
		se->ex->health(se->ex, h->key, false, h->down_since, NULL, se->ex->health_arg);
	h->down_since = 0;
	h->down_told = false;
}

void
ssh_host_failed(struct ssh_host *h, const char *why)
{
	struct ssh_exec *se = h->se;
	int64_t backoff = 1000;

	h->fails++;
	for (int i = 1; i < h->fails && backoff < SSH_BACKOFF_MAX; i++)
		backoff *= 2;
	if (backoff > SSH_BACKOFF_MAX)
		backoff = SSH_BACKOFF_MAX;
	h->next_try_ms = mono_ms() + backoff;
	free(h->down_why);
	h->down_why = xstrdup(why != NULL ? why : "?");
	if (h->down_since == 0)
		h->down_since = rundir_now();
	if (!h->down_told && rundir_now() - h->down_since >= SSH_DOWN_TELL_S && se->ex != NULL &&
	    se->ex->health != NULL) {
		h->down_told = true;
		se->ex->health(se->ex, h->key, true, h->down_since, h->down_why,
		               se->ex->health_arg);
	}
	h->st = H_NONE; /* the next use makes contact again (and measures the clock again) */
}

/* --- placement ---------------------------------------------------------------------------- */

static uint64_t
need_of(const struct ssh_exec *se, uint64_t memory)
{
	return memory > 0                   ? memory
	       : se->set.default_memory > 0 ? se->set.default_memory
	                                    : 1ull << 30;
}

static uint64_t
host_free(const struct ssh_host *h)
{
	return h->memory > h->used ? h->memory - h->used : 0;
}

/* The host for a run needing NEED: the one it fits best; NULL if it fits none (with ANY, the
 * one with the most free instead). Hosts that do not answer are left out. */
static struct ssh_host *
host_pick(struct ssh_exec *se, uint64_t need, bool any)
{
	struct ssh_host *best = NULL, *most = NULL;

	for (size_t i = 0; i < se->nhosts; i++) {
		struct ssh_host *h = se->hosts[i];

		if (!h->configured || (h->down_since > 0 && h->fails > 0 && h->down_told))
			continue;
		if (host_free(h) >= need && (best == NULL || host_free(h) < host_free(best)))
			best = h;
		if (most == NULL || host_free(h) > host_free(most))
			most = h;
	}
	return best != NULL ? best : any ? most : NULL;
}

bool
ssh_fits(struct executor *ex, uint64_t memory)
{
	struct ssh_exec *se = sexec(ex);

	return host_pick(se, need_of(se, memory), false) != NULL;
}

struct ssh_run *
ssh_run_new(struct exec_run *r, struct ssh_host *h, uint64_t need)
{
	struct ssh_run *s = xcalloc(1, sizeof(*s));

	s->r = r;
	s->h = h;
	s->memory = need;
	buf_init(&s->pack_buf, SSH_PACK_OUT);
	r->backend = s;
	r->handles_open++; /* the backend itself, closed when it is freed */
	if (h != NULL)
		h->used += need;
	return s;
}

/* The host of a run re-attached, from its handle (HANDLE JSON): one of the executor's, or one
 * added (not configured: no new run goes there) for a host since gone from the file. */
static struct ssh_host *
host_of_handle(struct ssh_exec *se, json_t *hd)
{
	const char *key = json_string_value(json_object_get(hd, "host"));
	struct remote_host rh;
	struct ssh_host *h;
	struct diag d;

	if (key == NULL)
		return NULL;
	if ((h = host_find(se, key)) != NULL)
		return h;
	diag_init(&d);
	if (remote_host_parse(key, (struct diag_pos){ 0 }, &rh, &d) < 0) {
		diag_free(&d);
		return NULL;
	}
	diag_free(&d);
	h = ssh_host_add(se, &rh);
	remote_host_clear(&rh);
	return h;
}

void
ssh_reserve(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	struct ssh_exec *se = sexec(ex);
	uint64_t need = need_of(se, memory);
	struct ssh_host *h = NULL;
	json_t *hd;

	if (r->handle != NULL && (hd = json_loads(r->handle, 0, NULL)) != NULL) {
		h = host_of_handle(se, hd);
		if (se->set.known_hosts == NULL) {
			/* an executor made for it: its ssh settings come from the handle */
			const char *kh = json_string_value(json_object_get(hd, "known_hosts"));
			const char *id = json_string_value(json_object_get(hd, "identity_file"));

			se->set.known_hosts = kh != NULL ? xstrdup(kh) : NULL;
			se->set.identity_file = id != NULL ? xstrdup(id) : NULL;
			se->set.dir = xstrdup("~/.ephemeron");
			se->ssh = (struct remote_ssh){ .identity_file = se->set.identity_file,
				                       .known_hosts = se->set.known_hosts,
				                       .control_dir = se->control_dir };
			int mrc = fsio_mkdirs(se->control_dir, 0700);

			(void)mrc; /* ssh says what it cannot do */
		}
		json_decref(hd);
	}
	if (h == NULL)
		h = host_pick(se, need, true);
	(void)ssh_run_new(r, h, need);
}

void
ssh_release(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	struct ssh_run *s = r->backend;

	(void)ex;
	(void)memory;
	if (s == NULL || s->h == NULL || s->h->cloud) /* a machine goes whole */
		return;
	if (s->lost && s->rdir != NULL) {
		/* held until the host answers again (host_sweep) */
		struct ssh_lost *l = xcalloc(1, sizeof(*l));

		l->id = r->id;
		l->memory = s->memory;
		l->rdir = xstrdup(s->rdir);
		l->agent = s->agent != NULL ? xstrdup(s->agent) : NULL;
		l->next = s->h->lost;
		s->h->lost = l;
		ssh_host_contact(s->h); /* keeps trying, with backoff */
		return;
	}
	s->h->used -= s->memory < s->h->used ? s->memory : s->h->used;
}

/* --- contact: hello and clock, once per connection ---------------------------------------- */

static void
host_wake(struct ssh_host *h, int rc, const char *why)
{
	struct ssh_run *w = h->waiters;

	h->waiters = NULL;
	while (w != NULL) {
		struct ssh_run *next = w->wnext;

		w->wnext = NULL;
		ssh_run_contacted(w, rc, why);
		w = next;
	}
}

static void
clock_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct ssh_host *h = data;
	struct ssh_exec *se = h->se;

	(void)op;
	if (se_op_done(se))
		return;
	if (res->fail == REMOTE_OK) {
		/* an offset within what the measure cannot tell apart is none: applied, it would
		 * only add its error to every time of the run */
		h->clock_offset =
		        fabs(res->clock_offset) > res->clock_bound ? res->clock_offset : 0;
		h->st = H_UP;
		ssh_host_answered(h);
		host_wake(h, 0, NULL);
	} else {
		ssh_host_failed(h, res->why);
		host_wake(h, ssh_fail_is_down(res->fail) ? -EAGAIN : -EIO, res->why);
		if (h->lost != NULL)
			ssh_host_contact(h); /* the lost runs' memory waits for it */
	}
}

static void
hello_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct ssh_host *h = data;
	struct ssh_exec *se = h->se;
	struct remote_req q;
	char *save, *line, *out;
	int rc;

	(void)op;
	if (se_op_done(se))
		return;
	if (res->fail != REMOTE_OK) {
		char *why = ssh_reason(res);

		ssh_host_failed(h, res->why);
		/* a refused key or a changed host key will not mend by waiting */
		host_wake(h, ssh_fail_is_down(res->fail) ? -EAGAIN : -EPERM, why);
		free(why);
		if (h->lost != NULL)
			ssh_host_contact(h); /* the lost runs' memory waits for it */
		return;
	}
	out = xstrdup(res->out);
	line = strtok_r(out, "\n", &save);
	free(h->abs);
	h->abs = line != NULL && line[0] == '/' ? xstrdup(line) : NULL;
	line = strtok_r(NULL, "\n", &save);
	free(h->python);
	h->python = line != NULL && strcmp(line, "none") != 0 ? xstrdup(line) : NULL;
	line = strtok_r(NULL, "", &save);
	if (h->abs == NULL) {
		free(out);
		ssh_host_failed(h, "the host's answer to the contact is not understood");
		host_wake(h, -EPROTO, "the host's answer to the contact is not understood");
		return;
	}
	host_sweep(h, line);
	free(out);
	q = (struct remote_req){ se->ex->loop, ssh_of_host(h), &h->rh, SSH_HELLO_MS, clock_cb, h };
	rc = remote_clock(&q, NULL);
	if (rc < 0) {
		host_wake(h, rc, strerror(-rc));
		return;
	}
	se->nops++;
}

/* Makes contact with H unless it is made or being made (its waiters are told). */
void
ssh_host_contact(struct ssh_host *h)
{
	struct ssh_exec *se = h->se;
	char *dir, *cmd;
	struct remote_req q;
	int rc;

	if (h->st != H_NONE || se->ex == NULL || se->stopping)
		return;
	if (mono_ms() < h->next_try_ms) {
		/* after a failure: tried again once the backoff has passed */
		if (!h->retry_open) {
			uv_timer_init(se->ex->loop, &h->retry);
			h->retry.data = h;
			h->retry_open = true;
			se->nops++;
		}
		if (!uv_is_active((uv_handle_t *)&h->retry))
			uv_timer_start(&h->retry, host_retry_cb,
			               (uint64_t)(h->next_try_ms - mono_ms()), 0);
		return;
	}
	dir = remote_quote_path(se->set.dir);
	cmd = xasprintf("d=%s/%s && mkdir -p \"$d/runs\" \"$d/files\" && cd \"$d\" && pwd -P && "
	                "{ find files -type f -mtime +" SSH_FILES_DAYS
	                " -exec rm -f {} + 2>/dev/null; true; } && "
	                "{ python3 -c 'import sys; print(\"%%d.%%d\" %% sys.version_info[:2])' "
	                "2>/dev/null || echo none; } && ls runs",
	                dir, se->ex->instance);
	free(dir);
	q = (struct remote_req){ se->ex->loop, ssh_of_host(h), &h->rh, SSH_HELLO_MS, hello_cb, h };
	rc = remote_run(&q, cmd, NULL, 0, 0, NULL);
	free(cmd);
	if (rc < 0) {
		host_wake(h, rc, strerror(-rc));
		return;
	}
	se->nops++;
	h->st = H_HELLO;
}

/* --- host ops: removal, and the sweep after a contact ------------------------------------ */

static void
host_retry_cb(uv_timer_t *t)
{
	ssh_host_contact(t->data);
}

static void
host_log(struct ssh_host *h, int64_t run, const char *msg)
{
	struct executor *ex = h->se->ex;

	if (ex != NULL && ex->log != NULL)
		ex->log(ex, run, msg, ex->health_arg);
}

/* What a removal is about: a run directory on a host. */
struct hop {
	struct ssh_host *h;
	int64_t id;
	bool lost; /* a run recorded lost: what it left is logged */
};

static void
remove_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct hop *o = data;
	struct ssh_host *h = o->h;

	(void)op;
	if (!se_op_done(h->se) && o->lost) {
		char *msg;

		if (res->fail == REMOTE_OK)
			msg = xasprintf("recorded lost; its host %s answers again: its agent was "
			                "stopped and its directory removed, not recorded; it had "
			                "left: %s",
			                h->key, res->out_len > 0 ? res->out : "(nothing)\n");
		else
			msg = xasprintf(
			        "recorded lost; its directory on %s could not be removed: %s",
			        h->key, res->why != NULL ? res->why : "?");
		msg[strcspn(msg, "\0")] = '\0';
		host_log(h, o->id, msg);
		free(msg);
	}
	free(o);
}

/* Removes the run directory RDIR of run ID on H, its agent AGENT (NULL: none) stopped first
 * when the run was recorded LOST (what it left is then logged). */
void
ssh_host_remove(struct ssh_host *h, int64_t id, const char *rdir, const char *agent, bool lost)
{
	struct ssh_exec *se = h->se;
	struct hop *o = xcalloc(1, sizeof(*o));
	char *qr = remote_quote(rdir), *qa = agent != NULL ? remote_quote(agent) : NULL, *cmd;
	struct remote_req q;
	int rc;

	o->h = h;
	o->id = id;
	o->lost = lost;
	/* an agent still there is stopped first (it records the run cancelled, there) */
	if (qa != NULL)
		cmd = xasprintf(
		        "r=%s; case $(%s --cancel \"$r\" 2>/dev/null) in sent) sleep 2;; esac; "
		        "%s rm -rf \"$r\"",
		        qr, qa,
		        lost ? "if test -f \"$r/result.json\"; then echo \"a result: "
		               "$(head -c 400 \"$r/result.json\")\"; fi; "
		               "echo \"the end of its output: $(tail -c 400 \"$r/output.log\" "
		               "2>/dev/null)\";"
		             : "");
	else
		cmd = xasprintf("rm -rf %s", qr);
	q =
	        (struct remote_req){ se->ex->loop,  ssh_of_host(h), &h->rh,
		                     SSH_STATUS_MS, remove_cb,      o };
	rc = remote_run(&q, cmd, NULL, 0, 4096, NULL);
	if (rc < 0)
		free(o);
	else
		se->nops++;
	free(cmd);
	free(qr);
	free(qa);
}

/* After a contact: the lost runs held on H are stopped and removed and their memory given
 * back; the run directories of runs the store has ended (a removal a crash interrupted) are
 * removed. LISTING: the names in DIR/<instance>/runs there. */
static void
host_sweep(struct ssh_host *h, const char *listing)
{
	struct ssh_exec *se = h->se;
	char *copy, *save, *name;

	while (h->lost != NULL) {
		struct ssh_lost *l = h->lost;

		h->lost = l->next;
		ssh_host_remove(h, l->id, l->rdir, l->agent, true);
		h->used -= l->memory < h->used ? l->memory : h->used;
		lost_free(l);
	}
	if (listing == NULL)
		return;
	copy = xstrdup(listing);
	for (name = strtok_r(copy, "\n", &save); name != NULL; name = strtok_r(NULL, "\n", &save)) {
		struct store_run row;
		char *end, *rdir;
		long long id = strtoll(name, &end, 10);

		if (*end != '\0' || id <= 0)
			continue;
		store_run_init(&row);
		if (store_run_get(se->ex->store, id, &row) == 0 &&
		    store_state_terminal(row.state) && row.handle != NULL &&
		    strstr(row.handle, h->key) != NULL) {
			json_t *hd = json_loads(row.handle, 0, NULL);
			const char *agent = json_string_value(json_object_get(hd, "agent"));

			rdir = xasprintf("%s/runs/%lld", h->abs, id);
			ssh_host_remove(h, id, rdir, agent, false);
			free(rdir);
			json_decref(hd);
		}
		store_run_clear(&row);
	}
	free(copy);
}

static void
ctl_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	(void)op;
	(void)res;
	(void)se_op_done(data);
}

static void
retry_closed(uv_handle_t *t)
{
	struct ssh_host *h = t->data;

	(void)se_op_done(h->se);
}

/* The process stops: the master connections end (the agents go on), the timers close. */
void
ssh_stop(struct executor *ex)
{
	struct ssh_exec *se = sexec(ex);

	se->stopping = true;
	for (size_t i = 0; i < se->nhosts; i++) {
		struct ssh_host *h = se->hosts[i];
		struct remote_req q = { ex->loop, ssh_of_host(h), &h->rh, 5000, ctl_cb, se };

		if (h->retry_open) {
			h->retry_open = false;
			uv_close((uv_handle_t *)&h->retry, retry_closed);
		}
		if (h->st == H_UP && remote_ctl(&q, "exit", NULL) == 0)
			se->nops++;
		h->st = H_NONE;
	}
}
