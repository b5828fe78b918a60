/* src/exec/exec_do_proc.c: a child process on the loop (exec_do_proc.h). */
#include "exec/exec_do_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/xalloc.h"

#define DO_PROC_CHUNK (16u << 10)

struct do_proc {
	uv_process_t proc;
	uv_pipe_t in, out;
	uv_write_t wr;
	char *input;
	size_t input_len;
	struct buf outb;
	int open; /* handles not yet closed */
	int64_t status;
	bool exited;
	bool over; /* the answer passed its cap: none is given */
	do_proc_cb *cb;
	void *data;
};

static void
proc_closed(uv_handle_t *h)
{
	struct do_proc *p = h->data;

	if (--p->open > 0)
		return;
	if (p->over)
		p->outb.len = 0;
	if (p->cb != NULL)
		p->cb(p, p->status, buf_cstr(&p->outb), p->outb.len, p->data);
	buf_free(&p->outb);
	if (p->input != NULL) /* it may hold a key (a create's user data) */
		explicit_bzero(p->input, p->input_len);
	free(p->input);
	free(p);
}

static void
proc_exit(uv_process_t *pr, int64_t status, int sig)
{
	struct do_proc *p = pr->data;

	p->exited = true;
	p->status = sig != 0 ? -sig : status;
	uv_close((uv_handle_t *)pr, proc_closed);
}

static void
proc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	b->base = xmalloc(DO_PROC_CHUNK);
	b->len = DO_PROC_CHUNK;
}

static void
proc_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct do_proc *p = st->data;

	if (n > 0 && !p->over && buf_append(&p->outb, b->base, (size_t)n) < 0)
		p->over = true; /* past the cap: no answer, which the caller says */
	free(b->base);
	if (n < 0)
		uv_close((uv_handle_t *)st, proc_closed);
}

static void
proc_written(uv_write_t *w, int status)
{
	struct do_proc *p = w->data;

	(void)status; /* a child that does not read its input says so by its answer */
	uv_close((uv_handle_t *)&p->in, proc_closed);
}

int
do_proc_start(uv_loop_t *loop, char *const argv[], const char *in, size_t in_len, size_t cap,
              do_proc_cb *cb, void *data, struct do_proc **out)
{
	struct do_proc *p = xcalloc(1, sizeof(*p));
	uv_process_options_t o = { 0 };
	uv_stdio_container_t io[3];
	uv_buf_t b;
	int rc;

	if (out != NULL)
		*out = NULL;
	buf_init(&p->outb, cap);
	p->cb = cb;
	p->data = data;
	uv_pipe_init(loop, &p->in, 0);
	uv_pipe_init(loop, &p->out, 0);
	p->in.data = p->out.data = p->proc.data = p->wr.data = p;
	io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	io[0].data.stream = (uv_stream_t *)&p->in;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&p->out;
	io[2].flags = UV_INHERIT_FD; /* its words (retries, waits) reach the daemon's log */
	io[2].data.fd = STDERR_FILENO;
	o.file = argv[0];
	o.args = (char **)argv;
	o.exit_cb = proc_exit;
	o.stdio = io;
	o.stdio_count = 3;
	p->open = 3;
	rc = uv_spawn(loop, &p->proc, &o);
	if (rc < 0) {
		p->cb = NULL; /* closed quietly */
		uv_close((uv_handle_t *)&p->proc, proc_closed);
		uv_close((uv_handle_t *)&p->in, proc_closed);
		uv_close((uv_handle_t *)&p->out, proc_closed);
		return rc;
	}
	if (uv_read_start((uv_stream_t *)&p->out, proc_alloc, proc_read) < 0) {
		p->over = true; /* no answer can be read: the caller hears none */
		uv_close((uv_handle_t *)&p->out, proc_closed);
	}
	if (in != NULL && in_len > 0) {
		p->input = xmalloc(in_len);
		memcpy(p->input, in, in_len);
		p->input_len = in_len;
		b = uv_buf_init(p->input, (unsigned)in_len);
		if (uv_write(&p->wr, (uv_stream_t *)&p->in, &b, 1, proc_written) < 0)
			uv_close((uv_handle_t *)&p->in, proc_closed);
	} else {
		uv_close((uv_handle_t *)&p->in, proc_closed);
	}
	if (out != NULL)
		*out = p;
	return 0;
}

void
do_proc_kill(struct do_proc *p)
{
	if (!p->exited)
		(void)uv_process_kill(&p->proc, SIGTERM);
}

void
do_proc_abandon(struct do_proc *p)
{
	p->cb = NULL;
}
