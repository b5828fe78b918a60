/* src/exec/exec_ssh_stream.c: the ssh executor follows a run: one ssh per run runs
 * `eph-agent --follow` on the host, whose frames (src/eph_agent.c) bring what output.log and
 * events.jsonl gained, result.json, the run's results and its end; appended here by byte
 * offset, so that a stream started again (after a dropped connection, a restart) doubles
 * nothing and loses nothing. A host that does not answer makes the run lost after
 * lost_after. The rest of a run: exec_ssh.c. */
#include "exec/exec_ssh_int.h"
#include "rundir/results.h"

/* --- following: one stream per run ------------------------------------------------------- */

/* The size of this machine's copy of the run's file NAME: the offset to follow from. */
static int64_t
local_size(struct exec_run *r, const char *name)
{
	char *p = xasprintf("%s/%s", r->dir, name);
	struct stat st;
	int rc = stat(p, &st);

	free(p);
	return rc == 0 ? (int64_t)st.st_size : 0;
}

/* Appends what DATA[0..LEN), the bytes of NAME from OFFSET, adds to this machine's copy
 * (whose size is where it stands: an overlap is not written twice). 0 or -errno. */
static int
local_append(struct exec_run *r, const char *name, int64_t offset, const char *data, size_t len)
{
	char *p = xasprintf("%s/%s", r->dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600), rc = 0;
	struct stat st;

	free(p);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
	} else if (offset <= (int64_t)st.st_size && offset + (int64_t)len > (int64_t)st.st_size) {
		size_t skip = (size_t)((int64_t)st.st_size - offset);

		rc = fsio_write_all(fd, data + skip, len - skip);
	} else if (offset > (int64_t)st.st_size) {
		rc = -EPROTO; /* a gap: the stream starts again from what is here */
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Writes result.json here, aside then renamed (the record reads it). 0 or -errno. */
static int
local_result(struct exec_run *r, const char *data, size_t len)
{
	char *tmp = xasprintf("%s/%s.tmp", r->dir, RUNDIR_RESULT);
	char *fin = xasprintf("%s/%s", r->dir, RUNDIR_RESULT);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc;

	rc = fd < 0 ? -errno : fsio_write_all(fd, data, len);
	if (fd >= 0 && fsync(fd) < 0 && rc == 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, fin) < 0)
		rc = -errno;
	if (rc < 0)
		(void)unlink(tmp);
	free(tmp);
	free(fin);
	return rc;
}

/* Whether P (LEN bytes, no NUL) is a path that stays under results/: relative, no empty, "."
 * nor ".." component. */
static bool
result_path_ok(const char *p, size_t len)
{
	size_t i = 0;

	if (len == 0 || p[0] == '/' || memchr(p, '\0', len) != NULL)
		return false;
	while (i < len) {
		const char *c = p + i, *sl = memchr(c, '/', len - i);
		size_t cl = sl != NULL ? (size_t)(sl - c) : len - i;

		if (cl == 0 || (cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		i += cl + 1;
		if (sl != NULL && i == len)
			return false; /* a trailing "/" */
	}
	return true;
}

/* Writes DATA[0..LEN), the bytes of the run's results/PATH at OFFSET, into this machine's run
 * directory (offset 0 starts the file anew: a stream started again sends it all again). The
 * directories PATH needs are made. 0 or -errno (-EPROTO for a path outside results/). */
static int
local_result_file(struct exec_run *r, const char *path, size_t plen, int64_t offset,
                  const char *data, size_t len)
{
	char *rel = xstrndup(path, plen), *p = xasprintf("%s/%s/%s", r->dir, RUNDIR_RESULTS, rel);
	size_t top = strlen(r->dir) + 1;
	int fd, rc = 0;

	free(rel);
	if (!result_path_ok(path, plen) || offset < 0) {
		free(p);
		return -EPROTO;
	}
	for (char *c = p + top; (c = strchr(c, '/')) != NULL; c++) {
		*c = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		*c = '/';
		if (rc < 0) {
			free(p);
			return rc;
		}
	}
	fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (offset == 0 ? O_TRUNC : 0),
	          0600);
	free(p);
	if (fd < 0)
		return -errno;
	for (size_t done = 0; rc == 0 && done < len;) {
		ssize_t w = pwrite(fd, data + done, len - done, (off_t)(offset + (int64_t)done));

		if (w < 0 && errno != EINTR)
			rc = -errno;
		else if (w > 0)
			done += (size_t)w;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

void
ssh_run_retry_closed(uv_handle_t *t)
{
	struct ssh_run *s = t->data;

	s->retry_open = false;
	ssh_run_maybe_free(s);
}

static void
stream_retry_cb(uv_timer_t *t)
{
	struct ssh_run *s = t->data;

	if (!s->torn && s->op == NULL)
		ssh_stream_start(s);
}

/* Follows S again after the backoff. */
static void
stream_again(struct ssh_run *s)
{
	int64_t wait = s->next_try_ms - mono_ms();

	if (!s->retry_open) {
		uv_timer_init(s->r->loop, &s->retry);
		s->retry.data = s;
		s->retry_open = true;
	}
	uv_timer_start(&s->retry, stream_retry_cb, (uint64_t)(wait > 0 ? wait : 0), 0);
}

/* The stream of S failed with RES: the host is told, and the run is lost once the host has
 * not answered it for lost_after; else it is followed again after a backoff. */
static void
run_op_failed(struct ssh_run *s, const struct remote_result *res)
{
	struct ssh_exec *se = sexec(s->r->ex);
	char *why;

	s->fails++;
	if (ssh_fail_is_down(res->fail)) {
		ssh_host_failed(s->h, res->why);
		s->next_try_ms = s->h->next_try_ms;
	} else {
		s->next_try_ms = mono_ms() + 1000; /* the host answers; the follower did not */
	}
	if (mono_ms() - s->last_ok_ms < se->set.lost_after * 1000) {
		stream_again(s);
		return;
	}
	why = ssh_fail_is_down(res->fail)
	              ? xasprintf("its host %s has not answered for %llds (lost_after): %s",
	                          s->h->key, (long long)se->set.lost_after,
	                          res->why != NULL ? res->why : "?")
	              : xasprintf("its agent on %s could not be followed for %llds (lost_after): "
	                          "%s",
	                          s->h->key, (long long)se->set.lost_after,
	                          res->why != NULL ? res->why : "its follower ended early");
	s->lost = true;
	exec_run_lost(s->r, why);
	free(why);
}

/* Takes the complete frames at the head of the stream's buffer. */
static void
stream_frames(struct ssh_run *s)
{
	struct exec_run *r = s->r;
	struct buf *b = &s->pack_buf; /* the pack's answer is long read: the stream's now */
	size_t used = 0;

	while (used < b->len) {
		const char *line = b->data + used;
		const char *nl = memchr(line, '\n', b->len - used);
		size_t hlen, need = 0;
		char tag;
		long long off = 0, len = 0;
		int pat = -1;

		if (nl == NULL)
			break;
		hlen = (size_t)(nl - line) + 1;
		tag = line[0];
		if ((tag == 'o' || tag == 'e') && sscanf(line + 1, "%lld %lld", &off, &len) == 2)
			need = (size_t)len;
		else if (tag == 'f' && sscanf(line + 1, "%lld %lld %n", &off, &len, &pat) == 2 &&
		         pat > 0 && len >= 0)
			need = (size_t)len;
		else if (tag == 'r' && sscanf(line + 1, "%lld", &len) == 1)
			need = (size_t)len;
		if (b->len - used - hlen < need)
			break; /* its bytes are still coming */
		if (tag == 'o' || tag == 'e') {
			int rc = local_append(r, tag == 'o' ? RUNDIR_OUTPUT : RUNDIR_EVENTS, off,
			                      nl + 1, need);

			if (rc < 0)
				s->stream_err = rc;
		} else if (tag == 'r') {
			if (local_result(r, nl + 1, need) < 0)
				s->stream_err = -EIO;
		} else if (tag == 'f' && pat > 0) {
			const char *path = line + 1 + pat;
			int rc = local_result_file(r, path, (size_t)(nl - path), off, nl + 1, need);

			if (rc < 0 && r->ex->log != NULL) {
				char *msg = xasprintf("results from %s: %.*s: %s", s->h->key,
				                      (int)(nl - path), path, strerror(-rc));

				r->ex->log(r->ex, r->id, msg, r->ex->health_arg);
				free(msg);
			}
			if (rc < 0)
				s->stream_err = rc;
		} else if (tag == 'x') {
			s->stream_end = true;
		}
		used += hlen + need;
	}
	memmove(b->data, b->data + used, b->len - used);
	b->len -= used;
}

static void
stream_out(struct remote_op *op, const char *p, size_t len, void *data)
{
	struct ssh_run *s = data;

	(void)op;
	if (s->torn)
		return;
	s->last_ok_ms = mono_ms();
	if (buf_append(&s->pack_buf, p, len) < 0) {
		s->stream_err = -E2BIG; /* a frame past any the agent sends */
		buf_reset(&s->pack_buf);
		remote_op_cancel(s->op);
		return;
	}
	stream_frames(s);
}

static void
stream_cb(struct remote_op *op, const struct remote_result *res, void *data)
{
	struct ssh_run *s = data;
	struct exec_run *r = s->r;

	(void)op;
	s->op = NULL;
	buf_reset(&s->pack_buf);
	if (s->torn) {
		ssh_run_maybe_free(s);
		return;
	}
	if (s->stream_end) {
		/* everything is here, result.json too if there is one */
		s->last_ok_ms = mono_ms();
		ssh_host_answered(s->h);
		exec_agent_gone(r, -1);
		return;
	}
	/* the follower ended early (the connection, our side that could not write, the agent
	 * binary gone): followed again, until lost_after */
	s->stream_err = 0;
	run_op_failed(s, res);
}

/* Follows S's agent: one ssh, `eph-agent --follow`, for as long as it runs. */
void
ssh_stream_start(struct ssh_run *s)
{
	struct exec_run *r = s->r;
	struct remote_req q = ssh_run_req(s, 0, stream_cb);
	char *qr = remote_quote(s->rdir), *qa = remote_quote(s->agent), *cmd;
	int rc;

	s->stream_end = false;
	s->stream_err = 0;
	buf_reset(&s->pack_buf);
	cmd = xasprintf("%s --follow %s %lld %lld", qa, qr, (long long)local_size(r, RUNDIR_OUTPUT),
	                (long long)local_size(r, RUNDIR_EVENTS));
	rc = remote_stream(&q, cmd, stream_out, &s->op);
	free(cmd);
	free(qr);
	free(qa);
	if (rc < 0) {
		s->next_try_ms = mono_ms() + 1000;
		stream_again(s);
	}
	if (s->cancel_wanted && s->cop == NULL)
		(void)ssh_run_send_cancel(s); /* the last one did not get through */
}
