/* src/exec/exec_slurm_cmd.c: the slurm executor's side of Slurm's commands (exec_slurm.c uses
 * it): each command a child (uv_spawn) whose output is read on the loop, never waited for;
 * the environment sbatch is given; and what their answers say (sbatch --parsable's job id,
 * scontrol -o's fields, a job state that is over, the words of a failure). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/exec.h"
#include "exec/exec_slurm_int.h"
#include "util/buf.h"
#include "util/xalloc.h"

static void cmd_maybe_done(struct slurm_cmd *c);

static void
cmd_closed(uv_handle_t *h)
{
	struct slurm_cmd *c = h->data;
	struct exec_run *r = c->r;
	struct slurm_exec *se = c->se;

	if (--c->open > 0)
		return;
	buf_free(&c->out[0]);
	buf_free(&c->out[1]);
	free(c);
	if (r != NULL)
		exec_handle_closed(r); /* may free R */
	else
		slurm_exec_op_done(se);
}

/* The job id sbatch --parsable printed ("ID" or "ID;CLUSTER"), or NULL. Caller frees. */
char *
slurm_job_id(struct buf *out)
{
	const char *s = buf_cstr(out);
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 20 || (s[n] != '\0' && s[n] != ';' && s[n] != '\n'))
		return NULL;
	return xstrndup(s, n);
}

static void
cmd_maybe_done(struct slurm_cmd *c)
{
	slurm_cmd_fn *cb = c->cb;

	if (!c->exited || c->eofs < 2)
		return;
	if (cb != NULL) {
		c->cb = NULL;
		cb(c, c->arg);
		return;
	}
	if (c->submit && c->status == 0 && c->r != NULL)
		slurm_cmd_abandoned(c); /* a job submitted for a run nobody follows any more */
}

static void
cmd_exit(uv_process_t *p, int64_t status, int sig)
{
	struct slurm_cmd *c = p->data;

	c->exited = true;
	c->status = sig != 0 ? -sig : status;
	uv_close((uv_handle_t *)p, cmd_closed);
	cmd_maybe_done(c);
}

static void
cmd_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	b->base = xmalloc(16 << 10);
	b->len = 16 << 10;
}

static void
cmd_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct slurm_cmd *c = st->data;
	int i = st == (uv_stream_t *)&c->pipe[0] ? 0 : 1;

	if (n > 0 && buf_append(&c->out[i], b->base, (size_t)n) < 0) {
		/* past the cap: read and dropped (the child is never left blocked); what was
		 * kept is judged as it is */
	}
	free(b->base);
	if (n >= 0)
		return;
	c->eofs++;
	uv_close((uv_handle_t *)st, cmd_closed);
	cmd_maybe_done(c);
}

/* exec_slurm_int.h */
int
slurm_cmd_spawn(uv_loop_t *loop, struct exec_run *r, struct slurm_exec *se, char **argv, char **env,
                slurm_cmd_fn *cb, void *arg, struct slurm_cmd **out)
{
	struct slurm_cmd *c = xcalloc(1, sizeof(*c));
	uv_process_options_t o = { 0 };
	uv_stdio_container_t io[3];
	int rc;

	c->r = r;
	c->se = se;
	c->cb = cb;
	c->arg = arg;
	buf_init(&c->out[0], SLURM_CMD_OUT);
	buf_init(&c->out[1], SLURM_CMD_OUT);
	io[0].flags = UV_IGNORE;
	for (int i = 0; i < 2; i++) {
		uv_pipe_init(loop, &c->pipe[i], 0);
		c->pipe[i].data = c;
		io[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
		io[i + 1].data.stream = (uv_stream_t *)&c->pipe[i];
	}
	c->proc.data = c;
	o.file = argv[0];
	o.args = argv;
	o.env = env; /* NULL: ours */
	o.exit_cb = cmd_exit;
	o.stdio = io;
	o.stdio_count = 3;
	c->open = 3;
	if (r != NULL)
		r->handles_open++;
	else
		se->nops++;
	rc = uv_spawn(loop, &c->proc, &o);
	if (rc < 0) {
		c->cb = NULL;
		c->exited = true;
		uv_close((uv_handle_t *)&c->proc, cmd_closed);
		uv_close((uv_handle_t *)&c->pipe[0], cmd_closed);
		uv_close((uv_handle_t *)&c->pipe[1], cmd_closed);
		if (out != NULL)
			*out = NULL;
		return rc;
	}
	/* a pipe that cannot be read is closed (the child's writes to it fail): the command ends
	 * all the same, judged by what the other one said and its status */
	for (int i = 0; i < 2; i++)
		if (uv_read_start((uv_stream_t *)&c->pipe[i], cmd_alloc, cmd_read) < 0) {
			c->eofs++;
			uv_close((uv_handle_t *)&c->pipe[i], cmd_closed);
		}
	if (out != NULL)
		*out = c;
	return 0;
}

/* Whether the variable KV ("NAME=value") goes to sbatch, and so into the job: what a login
 * has (PATH, HOME, the locale, the zone) and Slurm's own (SLURM_CONF: where the client finds
 * its cluster); nothing else of this process's environment (the secrets' variables among
 * it). Measured: --export=NONE, NIL or a list costs Slurm 0.5 s more per job than the default
 * ALL, so the environment is chosen here instead. */
static bool
env_passed(const char *kv)
{
	static const char *const names[] = { "PATH",     "HOME", "USER",   "LOGNAME", "LANG",
		                             "LANGUAGE", "TZ",   "TMPDIR", "SHELL",   NULL };
	size_t n = strcspn(kv, "=");

	if (kv[n] != '=')
		return false;
	if (strncmp(kv, "LC_", 3) == 0 || strncmp(kv, "SLURM_", 6) == 0)
		return true;
	for (size_t i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == n && strncmp(kv, names[i], n) == 0)
			return true;
	return false;
}

/* The environment sbatch runs with (env_passed), borrowed from environ; free the vector. */
char **
slurm_sbatch_env(void)
{
	size_t n = 0, k = 0;
	char **v;

	while (environ[n] != NULL)
		n++;
	v = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (env_passed(environ[i]))
			v[k++] = environ[i];
	v[k] = NULL;
	return v;
}

/* What a failed command said, for a reason: its stderr's last non-empty line (Slurm says its
 * error last), else its stdout's, else its status. Caller frees. */
char *
slurm_cmd_words(struct slurm_cmd *c, const char *what)
{
	for (int i = 1; i >= 0; i--) {
		char *s = xstrdup(buf_cstr(&c->out[i])), *line = NULL;
		size_t n = strlen(s);

		while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
			s[--n] = '\0';
		if (n > 0) {
			line = strrchr(s, '\n');
			line = xstrdup(line != NULL ? line + 1 : s);
			free(s);
			return line;
		}
		free(s);
	}
	return c->status < 0 ? xasprintf("%s was killed by signal %d", what, (int)-c->status)
	                     : xasprintf("%s exited with status %d", what, (int)c->status);
}

/* Whether WORDS say the controller could not be reached (not a refusal). */
bool
slurm_unreachable(const char *w)
{
	return strstr(w, "Unable to contact") != NULL || strstr(w, "connect failure") != NULL ||
	       strstr(w, "timed out") != NULL || strstr(w, "Connection refused") != NULL ||
	       strstr(w, "Zero Bytes were transmitted") != NULL;
}

/* A job state of Slurm that is over. */
bool
slurm_state_over(const char *st)
{
	static const char *const over[] = { "COMPLETED", "FAILED",        "CANCELLED", "TIMEOUT",
		                            "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
		                            "DEADLINE",  "REVOKED",       NULL };

	for (size_t i = 0; over[i] != NULL; i++)
		if (strcmp(st, over[i]) == 0)
			return true;
	return false;
}

/* The value of KEY= in scontrol's one-line answer LINE, or NULL. Caller frees. */
char *
slurm_field(const char *line, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = line; p != NULL && *p != '\0';) {
		p += strspn(p, " \n");
		if (strncmp(p, key, kl) == 0 && p[kl] == '=')
			return xstrndup(p + kl + 1, strcspn(p + kl + 1, " \n"));
		p = strpbrk(p, " \n");
	}
	return NULL;
}
