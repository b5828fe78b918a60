/* src/remote/remote_op.c: ssh operations on the loop. One op runs one ssh at a time (a
 * "step"): its stdout and stderr are read into capped buffers, its stdin is bytes written
 * from memory, a file's descriptor or /dev/null. A step ends when ssh exited and both pipes
 * reached EOF, or REMOTE_DRAIN_MS after the exit (a background ssh master that kept a pipe
 * open must not hold us). One timer per op serves its timeout, then the drain. */
#include "remote/remote_op.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define REMOTE_READ_CHUNK (64u << 10)

enum remote_kind { OP_RUN, OP_SHIP, OP_FETCH, OP_CLOCK, OP_CTL };

struct remote_op {
	enum remote_kind kind;
	uv_loop_t *loop;
	remote_cb cb;
	void *data;
	char **argv;      /* the next (or current) step's */
	char **env;       /* remote_env: borrowed strings */
	char *host;       /* remote_host_str, for messages */
	char **ship_argv; /* OP_SHIP: the upload, when the file is absent */
	int64_t timeout_ms;
	double t0, t_exit; /* remote_now() at the step's spawn and at its exit */
	int64_t start_ms;

	/* the step */
	uv_process_t proc;
	uv_pipe_t pin, pout, perr;
	uv_write_t wr;
	uv_timer_t timer;
	int step_open; /* the step's handles still open */
	bool running;  /* proc spawned, not exited */
	bool timer_open, timed_out, canceled, spawn_failed;
	bool mkdir_failed; /* the control directory could not be made: ssh says the rest */
	int64_t status;
	int sig;
	struct buf out, err;
	size_t out_cap;
	remote_out_cb on_out; /* remote_stream: stdout handed over as it comes */
	bool out_trunc;
	char *in;
	size_t in_len;
	int in_fd; /* OP_SHIP's upload: the file as stdin; -1 */
	char chunk[REMOTE_READ_CHUNK];

	/* OP_SHIP */
	uv_work_t work;
	bool working;
	char *local, *dir, *remote_path;
	int work_rc;
	off_t size;
	mode_t mode;
	char hash[SHA256_DIGEST_SIZE * 2 + 1];
	bool shipped;
	/* OP_FETCH */
	int64_t offset;
	bool missing;
};

static void remote_step_end(struct remote_op *op);

/* CLOCK_REALTIME in seconds, to the microsecond (util/clock's is to the millisecond, too coarse
 * for a clock offset measured over a multiplexed connection). */
static double
remote_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

static struct remote_op *
remote_op_new(const struct remote_req *q, enum remote_kind kind)
{
	struct remote_op *op = xcalloc(1, sizeof(*op));

	op->kind = kind;
	op->loop = q->loop;
	op->cb = q->cb;
	op->data = q->data;
	op->env = remote_env(NULL);
	op->host = remote_host_str(q->host);
	op->timeout_ms = q->timeout_ms;
	op->start_ms = clock_mono_ms();
	op->in_fd = -1;
	op->timer.data = op; /* remote_finish reads it even when the timer never ran */
	op->out_cap = REMOTE_MAX_OUT;
	buf_init(&op->out, op->out_cap);
	buf_init(&op->err, REMOTE_MAX_ERR);
	/* ssh makes no directory for its sockets; a failure shows as ssh's own (it then runs
	 * without a master) */
	if (q->ssh->control_dir != NULL && fsio_mkdirs(q->ssh->control_dir, 0700) < 0)
		op->mkdir_failed = true;
	return op;
}

static void
remote_op_free(struct remote_op *op)
{
	remote_argv_free(op->argv);
	remote_argv_free(op->ship_argv);
	free(op->env);
	free(op->host);
	buf_free(&op->out);
	buf_free(&op->err);
	if (op->in != NULL) /* it may hold secrets (exec_ssh.c's start) */
		explicit_bzero(op->in, op->in_len);
	free(op->in);
	if (op->in_fd >= 0)
		close(op->in_fd);
	free(op->local);
	free(op->dir);
	free(op->remote_path);
	free(op);
}

/* Parses `date +%s.%N`'s output into seconds; *PREC is the precision. -1 if unreadable. */
static double
remote_parse_date(const char *s, double *prec)
{
	char *e;
	long long sec = strtoll(s, &e, 10);
	double frac = 0, scale = 0.1;
	int digits = 0;

	if (e == s)
		return -1;
	if (*e == '.')
		for (e++; *e >= '0' && *e <= '9'; e++, digits++, scale /= 10)
			frac += (*e - '0') * scale;
	*prec = digits > 0 ? 0 : 1.0; /* a date without %N prints "N" or "%N" */
	return (double)sec + frac;
}

static void
remote_timer_closed(uv_handle_t *h)
{
	struct remote_op *op = h->data;
	struct remote_result r;
	char *why = NULL, *fp = NULL;
	int status = (int)op->status;

	memset(&r, 0, sizeof(r));
	r.status = op->sig != 0 || op->spawn_failed ? -1 : status;
	r.signal = op->sig;
	r.out = buf_cstr(&op->out);
	r.out_len = op->out.len;
	r.out_truncated = op->out_trunc;
	r.err = buf_cstr(&op->err);
	if (op->err.len > 0) /* else buf_cstr's "" is not ours to write */
		op->err.len = remote_strip_noise(op->err.data);
	r.elapsed_ms = (op->t_exit - op->t0) * 1000.0;
	r.offset = op->offset;
	if (op->canceled)
		r.fail = REMOTE_CANCELED;
	else if (op->spawn_failed)
		r.fail = REMOTE_SPAWN;
	else if (op->timed_out)
		r.fail = REMOTE_TIMEOUT;
	else if (op->sig != 0)
		r.fail = REMOTE_SSH;
	else
		r.fail = remote_classify(status, r.err);
	if (op->kind == OP_SHIP) {
		r.remote_path = op->remote_path;
		r.shipped = op->shipped;
		if (op->work_rc < 0 && !op->canceled && !op->timed_out) {
			r.fail = REMOTE_LOCAL;
			why = xasprintf("%s: cannot read %s: %s", op->host, op->local,
			                strerror(-op->work_rc));
		}
	} else if (op->kind == OP_FETCH && r.fail == REMOTE_STATUS &&
	           status == REMOTE_FETCH_MISSING) {
		r.fail = REMOTE_OK;
		r.missing = true;
	} else if (op->kind == OP_FETCH && r.fail == REMOTE_OK) {
		r.offset = op->offset + (int64_t)op->out.len;
	} else if (op->kind == OP_CLOCK && r.fail == REMOTE_OK) {
		double prec, remote = remote_parse_date(r.out, &prec);

		if (remote < 0) {
			r.fail = REMOTE_SSH;
			why = xasprintf("%s: cannot read the host's clock from \"%.40s\"", op->host,
			                r.out);
		} else {
			r.clock_offset = remote - (op->t0 + op->t_exit) / 2;
			r.clock_bound = (op->t_exit - op->t0) / 2 + prec;
		}
	}
	if (op->kind == OP_FETCH && r.fail != REMOTE_OK) {
		r.out = ""; /* nothing half-fetched is handed on */
		r.out_len = 0;
	}
	if (r.fail == REMOTE_HOST_KEY)
		r.fingerprint = fp = remote_fingerprint(r.err);
	if (r.fail != REMOTE_OK && why == NULL) {
		const char *err = r.err;

		if (r.fail == REMOTE_SPAWN && op->spawn_failed)
			err = uv_strerror((int)op->status);
		why = remote_why(op->host, r.fail, r.status, err);
	}
	r.why = why;
	if (op->cb != NULL) /* NULL: the starter failed and said so */
		op->cb(op, &r, op->data);
	free(why);
	free(fp);
	remote_op_free(op);
}

/* The op is over: the timer goes, then the callback. */
static void
remote_finish(struct remote_op *op)
{
	if (op->timer_open) {
		op->timer_open = false;
		uv_close((uv_handle_t *)&op->timer, remote_timer_closed);
	} else {
		remote_timer_closed((uv_handle_t *)&op->timer);
	}
}

static void
remote_step_closed(uv_handle_t *h)
{
	struct remote_op *op = h->data;

	if (--op->step_open == 0)
		remote_step_end(op);
}

static void
remote_close_pipe(uv_pipe_t *p)
{
	if (!uv_is_closing((uv_handle_t *)p))
		uv_close((uv_handle_t *)p, remote_step_closed);
}

static void remote_arm(struct remote_op *op);

static void
remote_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct remote_op *op = p->data;

	op->t_exit = remote_now();
	op->running = false;
	op->status = status;
	op->sig = sig;
	uv_close((uv_handle_t *)p, remote_step_closed);
	/* the pipes may stay open in a background master: they get REMOTE_DRAIN_MS */
	remote_arm(op);
}

static void
remote_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct remote_op *op = h->data;

	(void)hint;
	*b = uv_buf_init(op->chunk, sizeof(op->chunk));
}

static void
remote_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct remote_op *op = s->data;
	bool is_out = s == (uv_stream_t *)&op->pout;
	struct buf *into = is_out ? &op->out : &op->err;

	if (nread < 0) {
		remote_close_pipe((uv_pipe_t *)s);
		return;
	}
	if (nread > 0 && is_out && op->on_out != NULL) {
		op->on_out(op, b->base, (size_t)nread, op->data);
		return;
	}
	if (nread > 0 && buf_append(into, b->base, (size_t)nread) < 0) {
		size_t room = into->limit - into->len;

		if (room > 0 && buf_append(into, b->base, room) < 0)
			abort();
		if (is_out)
			op->out_trunc = true;
	}
}

static void
remote_write_cb(uv_write_t *w, int status)
{
	struct remote_op *op = w->data;

	(void)status; /* a failed write shows in ssh's status */
	remote_close_pipe(&op->pin);
}

static void
remote_timer_cb(uv_timer_t *t)
{
	struct remote_op *op = t->data;

	if (op->running) {
		/* the op's timeout */
		op->timed_out = true;
		uv_process_kill(&op->proc, SIGKILL);
		return;
	}
	if (op->working) { /* remote_hash_done sees it */
		op->timed_out = true;
		(void)uv_cancel((uv_req_t *)&op->work);
		return;
	}
	if (op->step_open == 0)
		return;
	/* the drain after the exit */
	remote_close_pipe(&op->pout);
	remote_close_pipe(&op->perr);
	remote_close_pipe(&op->pin);
}

/* Arms the timer: the op's remaining time while ssh runs, the drain after. */
static void
remote_arm(struct remote_op *op)
{
	int64_t left;

	if (!op->timer_open)
		return;
	if (!op->running) {
		uv_timer_start(&op->timer, remote_timer_cb, REMOTE_DRAIN_MS, 0);
		return;
	}
	if (op->timeout_ms <= 0) {
		uv_timer_stop(&op->timer); /* a drain left armed by the step before */
		return;
	}
	left = op->timeout_ms - (clock_mono_ms() - op->start_ms);
	uv_timer_start(&op->timer, remote_timer_cb, (uint64_t)(left > 0 ? left : 0), 0);
}

/* Starts a step: op->argv, with op->in (bytes), op->in_fd or /dev/null on stdin. 0 or the
 * -errno of uv_spawn (the step then ends at once, its handles closing). */
static int
remote_spawn(struct remote_op *op)
{
	uv_process_options_t o;
	uv_stdio_container_t stdio[3];
	int rc;

	memset(&o, 0, sizeof(o));
	buf_reset(&op->out);
	buf_reset(&op->err);
	op->out_trunc = false;
	op->status = 0;
	op->sig = 0;
	uv_pipe_init(op->loop, &op->pout, 0);
	uv_pipe_init(op->loop, &op->perr, 0);
	uv_pipe_init(op->loop, &op->pin, 0);
	op->proc.data = op->pout.data = op->perr.data = op->pin.data = op;
	if (op->in != NULL) {
		stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
		stdio[0].data.stream = (uv_stream_t *)&op->pin;
	} else if (op->in_fd >= 0) {
		stdio[0].flags = UV_INHERIT_FD;
		stdio[0].data.fd = op->in_fd;
	} else {
		stdio[0].flags = UV_IGNORE; /* /dev/null */
	}
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&op->pout;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&op->perr;
	o.file = op->argv[0];
	o.args = op->argv;
	o.env = op->env;
	o.stdio = stdio;
	o.stdio_count = 3;
	o.exit_cb = remote_exit_cb;
	/* a session of its own: a terminal's ^C to us does not reach ssh or its master */
	o.flags = UV_PROCESS_DETACHED;
	op->t0 = remote_now();
	rc = uv_spawn(op->loop, &op->proc, &o);
	op->step_open = 4; /* uv_spawn initialises the handle even when it fails */
	if (rc < 0) {
		op->t_exit = op->t0;
		op->spawn_failed = true;
		op->status = rc;
		uv_close((uv_handle_t *)&op->proc, remote_step_closed);
		remote_close_pipe(&op->pout);
		remote_close_pipe(&op->perr);
		remote_close_pipe(&op->pin);
		return rc;
	}
	op->running = true;
	if (op->in_fd >= 0) { /* ssh has its copy */
		close(op->in_fd);
		op->in_fd = -1;
	}
	if (op->in != NULL) {
		uv_buf_t b = uv_buf_init(op->in, (unsigned)op->in_len);

		op->wr.data = op;
		if (op->in_len == 0 ||
		    uv_write(&op->wr, (uv_stream_t *)&op->pin, &b, 1, remote_write_cb) < 0)
			remote_close_pipe(&op->pin); /* its EOF */
	} else {
		remote_close_pipe(&op->pin);
	}
	if (uv_read_start((uv_stream_t *)&op->pout, remote_alloc_cb, remote_read_cb) < 0)
		remote_close_pipe(&op->pout);
	if (uv_read_start((uv_stream_t *)&op->perr, remote_alloc_cb, remote_read_cb) < 0)
		remote_close_pipe(&op->perr);
	remote_arm(op);
	return 0;
}

/* Every handle of the step is closed. */
static void
remote_step_end(struct remote_op *op)
{
	bool ok = !op->canceled && !op->timed_out && !op->spawn_failed && op->sig == 0;

	if (op->kind == OP_SHIP && ok && op->ship_argv != NULL) {
		if (op->status == 0) { /* there already */
			op->shipped = false;
		} else if (op->status == 1) { /* absent: upload it */
			int fd = open(op->local, O_RDONLY | O_CLOEXEC);

			remote_argv_free(op->argv);
			op->argv = op->ship_argv;
			op->ship_argv = NULL;
			op->shipped = true;
			if (fd < 0) {
				op->work_rc = -errno;
			} else {
				op->in_fd = fd;
				if (remote_spawn(op) == 0)
					return;
				return; /* the failed step ends through its closing handles */
			}
		}
	}
	remote_finish(op);
}

/* Starts the op's timer and its first step; on failure everything is undone (no callback). */
static int
remote_begin(struct remote_op *op, struct remote_op **out)
{
	int rc;

	uv_timer_init(op->loop, &op->timer);
	op->timer.data = op;
	op->timer_open = true;
	rc = remote_spawn(op);
	if (rc < 0) {
		/* the callback must not run: let the handles close, then free quietly */
		op->cb = NULL;
		return rc;
	}
	if (out != NULL)
		*out = op;
	return 0;
}

int
remote_run(const struct remote_req *q, const char *command, const void *in, size_t in_len,
           size_t out_cap, struct remote_op **out)
{
	struct remote_op *op;

	if (out != NULL)
		*out = NULL;
	op = remote_op_new(q, OP_RUN);
	op->argv = remote_argv(q->ssh, q->host, NULL, command);
	if (in != NULL) {
		op->in = xmalloc(in_len + 1);
		memcpy(op->in, in, in_len);
		op->in_len = in_len;
	}
	if (out_cap > 0) {
		op->out_cap = out_cap;
		buf_init(&op->out, out_cap);
	}
	return remote_begin(op, out);
}

int
remote_stream(const struct remote_req *q, const char *command, remote_out_cb on_out,
              struct remote_op **out)
{
	struct remote_op *op;

	if (out != NULL)
		*out = NULL;
	op = remote_op_new(q, OP_RUN);
	op->argv = remote_argv(q->ssh, q->host, NULL, command);
	op->on_out = on_out;
	return remote_begin(op, out);
}

/* A copy of ARGV (remote_argv's with a command) with COMMAND as its last element. */
static char **
remote_argv_cmd(char *const *argv, const char *command)
{
	size_t n = 0;
	char **v;

	while (argv[n] != NULL)
		n++;
	v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i + 1 < n; i++)
		v[i] = xstrdup(argv[i]);
	v[n - 1] = xstrdup(command);
	return v;
}

/* Off the loop: opens LOCAL, notes its size and mode, hashes it. */
static void
remote_hash_work(uv_work_t *w)
{
	struct remote_op *op = w->data;
	struct sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];
	struct stat st;
	ssize_t n;
	int fd = open(op->local, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		op->work_rc = -errno;
		return;
	}
	errno = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		op->work_rc = errno != 0 ? -errno : -EINVAL;
		close(fd);
		return;
	}
	op->size = st.st_size;
	op->mode = st.st_mode & 0777;
	sha256_init(&ctx);
	while ((n = read(fd, op->chunk, sizeof(op->chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			op->work_rc = -errno;
			close(fd);
			return;
		}
		sha256_update(&ctx, (size_t)n, (const uint8_t *)op->chunk);
	}
	close(fd);
	sha256_digest(&ctx, sizeof(digest), digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(op->hash + 2 * i, 3, "%02x", digest[i]);
}

static void
remote_hash_done(uv_work_t *w, int status)
{
	struct remote_op *op = w->data;
	char *d, *cmd, *tmp;

	op->working = false;
	if (op->canceled || op->timed_out || status < 0 || op->work_rc < 0) {
		remote_finish(op);
		return;
	}
	op->remote_path = xasprintf("%s/%s", op->dir, op->hash);
	d = remote_quote_path(op->dir);
	cmd = xasprintf("test -f %s/%s", d, op->hash);
	op->ship_argv = remote_argv_cmd(op->argv, cmd);
	free(cmd);
	/* the upload: a name of this shell's own in DIR, its size checked (a connection dropped
	 * mid-way gives cat an early EOF, and a short file must never take the hash's name) */
	tmp = xasprintf("%s/.%s.$$.tmp", d, op->hash);
	cmd = xasprintf("umask 077 && mkdir -p %s && t=%s && trap 'rm -f \"$t\"' EXIT && "
	                "cat >\"$t\" && n=$(wc -c <\"$t\") && test $n -eq %lld && "
	                "chmod %04o \"$t\" && mv -f \"$t\" %s/%s && trap - EXIT",
	                d, tmp, (long long)op->size, (unsigned)op->mode, d, op->hash);
	/* argv: the check; ship_argv: the upload, if the check says the file is absent */
	remote_argv_free(op->argv);
	op->argv = op->ship_argv;
	op->ship_argv = remote_argv_cmd(op->argv, cmd);
	free(cmd);
	free(tmp);
	free(d);
	if (remote_spawn(op) < 0)
		return; /* the step ends through its closing handles */
}

int
remote_ship(const struct remote_req *q, const char *local, const char *dir, struct remote_op **out)
{
	struct remote_op *op;
	int rc;

	if (out != NULL)
		*out = NULL;
	op = remote_op_new(q, OP_SHIP);
	op->local = xstrdup(local);
	op->dir = xstrdup(dir);
	op->argv = remote_argv(q->ssh, q->host, NULL, ""); /* the command comes with the hash */
	uv_timer_init(op->loop, &op->timer);
	op->timer.data = op;
	op->timer_open = true;
	op->work.data = op;
	rc = uv_queue_work(op->loop, &op->work, remote_hash_work, remote_hash_done);
	if (rc < 0) {
		op->cb = NULL;
		remote_finish(op);
		return rc;
	}
	op->working = true;
	if (op->timeout_ms > 0)
		uv_timer_start(&op->timer, remote_timer_cb, (uint64_t)op->timeout_ms, 0);
	if (out != NULL)
		*out = op;
	return 0;
}

int
remote_fetch(const struct remote_req *q, const char *path, int64_t offset, size_t max,
             struct remote_op **out)
{
	struct remote_op *op;
	char *p, *cmd;

	if (out != NULL)
		*out = NULL;
	if (offset < 0)
		return -EINVAL;
	if (max == 0 || max > REMOTE_MAX_FETCH)
		max = REMOTE_MAX_FETCH;
	op = remote_op_new(q, OP_FETCH);
	op->offset = offset;
	p = remote_quote_path(path);
	/* tail -c +N starts at byte N (1-based); head stops the transfer at MAX */
	cmd = xasprintf("f=%s; test -e \"$f\" || exit %d; tail -c +%lld \"$f\" | head -c %zu", p,
	                REMOTE_FETCH_MISSING, (long long)offset + 1, max);
	op->argv = remote_argv(q->ssh, q->host, NULL, cmd);
	free(cmd);
	free(p);
	op->out_cap = max;
	buf_init(&op->out, max);
	return remote_begin(op, out);
}

int
remote_clock(const struct remote_req *q, struct remote_op **out)
{
	struct remote_op *op;

	if (out != NULL)
		*out = NULL;
	op = remote_op_new(q, OP_CLOCK);
	op->argv = remote_argv(q->ssh, q->host, NULL, "date +%s.%N");
	op->out_cap = 256;
	buf_init(&op->out, op->out_cap);
	return remote_begin(op, out);
}

int
remote_ctl(const struct remote_req *q, const char *ctl, struct remote_op **out)
{
	struct remote_op *op;

	if (out != NULL)
		*out = NULL;
	op = remote_op_new(q, OP_CTL);
	op->argv = remote_argv(q->ssh, q->host, ctl, NULL);
	return remote_begin(op, out);
}

pid_t
remote_op_pid(const struct remote_op *op)
{
	return op->running ? (pid_t)op->proc.pid : 0;
}

void
remote_op_cancel(struct remote_op *op)
{
	op->canceled = true;
	if (op->running)
		uv_process_kill(&op->proc, SIGTERM);
	else if (op->working)
		(void)uv_cancel((uv_req_t *)&op->work); /* else remote_hash_done sees canceled */
}
