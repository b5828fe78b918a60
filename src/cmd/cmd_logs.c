/* src/cmd/cmd_logs.c: `eph logs RUN|JOB [-f]`, a run's output.log, followed while it is live. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_runs.h"
#include "rundir/logrec.h"
#include "rundir/rundir.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/xalloc.h"

static int cmd_logs_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_logs = {
	.name = "logs",
	.usage = "logs RUN|JOB [-f] [--raw | --json]",
	.summary = "print a run's output (a job's latest run), following it while live",
	.help = "RUN is a run id; a JOB name means that job's latest run. By default prints\n"
	        "output.log as it is: one record a line, \"TIMESTAMP STREAM TEXT\", with the UTC\n"
	        "time the line arrived, the stream (out, err; out+ and err+ mark a piece of a line\n"
	        "that continues in the next record) and the text, invalid UTF-8 and control bytes\n"
	        "escaped as \\xNN.\n\n"
	        "Options:\n"
	        "  -f, --follow  keep printing while the run is live; exits once it has finished\n"
	        "                and everything is printed\n"
	        "  -r, --raw     the command's own bytes: no timestamps nor stream names, the\n"
	        "                pieces of a line joined, escapes decoded\n"
	        "  --json        one JSON object a record: {\"t\", \"stream\", \"text\", \"more\"}\n\n"
	        "Exits 2 when there is no such run.\n",
	.exec = cmd_logs_exec,
};

enum logs_mode { LOGS_AS_IS, LOGS_RAW, LOGS_JSON };

#define LOGS_POLL_MS 200

struct logs {
	enum logs_mode mode;
	struct buf line; /* an incomplete line, in RAW and JSON modes */
	bool too_long;   /* the line in progress outgrew LINE: no record, skipped */
	size_t skipped;  /* lines that are not records (rundir/logrec.h), not shown */
	int pending;     /* RAW: the stream whose line is unfinished (LOGREC_* + 1), or 0 */
};

/* One record, in RAW or JSON mode. */
static int
put_record(const struct logrec *r, void *arg)
{
	struct logs *l = arg;

	if (l->mode == LOGS_RAW) {
		char *bytes = xmalloc(r->len + 1);
		int stream = (int)r->stream + 1;

		if (l->pending != 0 && l->pending != stream)
			putchar('\n'); /* another stream interrupts an unfinished line */
		fwrite(bytes, 1, logrec_unescape(r->text, r->len, true, bytes), stdout);
		if (!r->more)
			putchar('\n');
		l->pending = r->more ? stream : 0;
		free(bytes);
	} else {
		json_t *o = json_object();

		json_object_set_new(o, "t", json_stringn(r->ts, LOGREC_TS_LEN));
		json_object_set_new(o, "stream",
		                    json_string(r->stream == LOGREC_ERR ? "err" : "out"));
		json_object_set_new(o, "text", json_stringn(r->text, r->len));
		json_object_set_new(o, "more", json_boolean(r->more));
		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
	}
	return 0;
}

/* Handles N bytes of output.log: whole lines go to logrec_foreach, the rest waits in l->line. */
static void
put_bytes(struct logs *l, const char *p, size_t n)
{
	if (l->mode == LOGS_AS_IS) {
		fwrite(p, 1, n, stdout);
		return;
	}
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) + 1 : n;

		if (!l->too_long && buf_append(&l->line, p, take) < 0)
			l->too_long = true; /* longer than any record the agent writes */
		if (nl != NULL) {
			if (l->too_long)
				l->skipped++;
			else
				(void)logrec_foreach(l->line.data, l->line.len, put_record, l, NULL,
				                     &l->skipped);
			buf_reset(&l->line);
			l->too_long = false;
		}
		p += take;
		n -= take;
	}
}

/* Reads FD to its end. 0 or -errno. */
static int
drain(struct logs *l, int fd)
{
	char chunk[65536];
	ssize_t r;

	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		put_bytes(l, chunk, (size_t)r);
	}
	fflush(stdout);
	return ferror(stdout) ? -EPIPE : 0;
}

/* Whether the run is over: its result.json exists, or the store holds it as terminal (a run
 * that ended without its agent writing a result: lost, skipped, cancelled before it ran). */
static bool
run_over(struct store *s, int64_t id, const char *dir)
{
	struct store_run r;
	bool over = false;
	char *res;

	if (dir != NULL) {
		res = xasprintf("%s/%s", dir, RUNDIR_RESULT);
		over = access(res, F_OK) == 0;
		free(res);
		if (over)
			return true;
	}
	if (store_run_get(s, id, &r) == 0) {
		over = store_state_terminal(r.state);
		store_run_clear(&r);
	}
	return over;
}

/* The run's log path, re-reading the store (a queued run has none yet); caller frees. */
static char *
log_path_of(struct store *s, const struct store_run *r0, char **dir)
{
	struct store_run r;
	char *p = NULL;

	*dir = NULL;
	if (store_run_get(s, r0->id, &r) != 0)
		return NULL;
	if (r.run_dir != NULL)
		*dir = xstrdup(r.run_dir);
	if (r.log_path != NULL)
		p = xstrdup(r.log_path);
	else if (r.run_dir != NULL)
		p = xasprintf("%s/%s", r.run_dir, RUNDIR_OUTPUT);
	store_run_clear(&r);
	return p;
}

/* Follows the log of run R until the run is over, then drains it. */
static int
follow(struct logs *l, struct store *s, const struct store_run *r)
{
	char *dir = NULL, *path = NULL;
	int fd = -1, in = -1, rc = 0;
	bool over = false;

	for (;;) {
		if (fd < 0) {
			free(path);
			free(dir);
			path = log_path_of(s, r, &dir);
			if (path != NULL)
				fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 && path != NULL && errno != ENOENT) {
				fprintf(stderr, "eph logs: %s: %s\n", path, strerror(errno));
				rc = -errno;
				break;
			}
		}
		if (in < 0 && dir != NULL) {
			in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
			if (in >= 0 && inotify_add_watch(in, dir,
			                                 IN_MODIFY | IN_CREATE | IN_MOVED_TO |
			                                         IN_CLOSE_WRITE) < 0) {
				close(in); /* no watch (limits, no dir yet): poll instead */
				in = -1;
			}
		}
		if (fd >= 0 && (rc = drain(l, fd)) < 0)
			break;
		if (over)
			break;
		/* Checked after draining, then drained once more: nothing written before
		 * result.json is missed. */
		if ((over = run_over(s, r->id, dir)))
			continue;
		if (in >= 0) {
			struct pollfd pfd = { .fd = in, .events = POLLIN };
			char ev[4096];

			if (poll(&pfd, 1, 1000) > 0)
				while (read(in, ev, sizeof(ev)) > 0)
					;
		} else {
			poll(NULL, 0, LOGS_POLL_MS);
		}
	}
	if (in >= 0)
		close(in);
	if (fd >= 0)
		close(fd);
	free(path);
	free(dir);
	return rc;
}

static int
cmd_logs_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "raw", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct logs l = { .mode = LOGS_AS_IS };
	struct store *s = NULL;
	struct store_run r;
	bool follow_opt = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "fr", opts, NULL)) != -1) {
		if (opt == 'f')
			follow_opt = true;
		else if (opt == 'r' || opt == 'j') {
			if (l.mode != LOGS_AS_IS)
				return cmd_usage_error(&cmd_logs,
				                       "--raw and --json exclude each other");
			l.mode = opt == 'r' ? LOGS_RAW : LOGS_JSON;
		} else
			return cmd_usage_error(&cmd_logs, "unknown option '%s'", argv[optind - 1]);
	}
	if (argc - optind != 1)
		return cmd_usage_error(&cmd_logs,
		                       argc - optind == 0 ? "which run?" : "too many arguments");
	rc = cmd_store_open(ctx, &s);
	if (rc == -ENOENT)
		return cmd_run_not_found("logs", argv[optind], NULL);
	if (rc < 0)
		return EPH_EXIT_FAIL;
	rc = cmd_run_find(s, argv[optind], &r);
	if (rc < 0) {
		if (rc == -ENOENT)
			rc = cmd_run_not_found("logs", argv[optind], s);
		else
			fprintf(stderr, "eph logs: reading the run: %s\n", store_errmsg(s));
		store_close(s);
		return rc == EPH_EXIT_USAGE ? rc : EPH_EXIT_FAIL;
	}
	buf_init(&l.line, BUF_MAX_MSG);
	if (follow_opt) {
		rc = follow(&l, s, &r);
	} else {
		char *dir = NULL, *path = log_path_of(s, &r, &dir);
		int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;

		if (fd < 0 && (path == NULL || errno == ENOENT)) {
			fprintf(stderr, "eph logs: run %lld (%s) has no output%s\n",
			        (long long)r.id, store_state_name(r.state),
			        store_state_terminal(r.state) ? "" : " yet (-f follows it)");
			rc = 0;
		} else if (fd < 0) {
			fprintf(stderr, "eph logs: %s: %s\n", path, strerror(errno));
			rc = -errno;
		} else {
			rc = drain(&l, fd);
			close(fd);
		}
		free(path);
		free(dir);
	}
	/* what follows the last newline is a record still being written (rundir/logrec.h) */
	if (l.skipped > 0)
		fprintf(stderr, "eph logs: %zu line%s of the log %s not a record: not shown\n",
		        l.skipped, l.skipped == 1 ? "" : "s", l.skipped == 1 ? "is" : "are");
	buf_free(&l.line);
	store_run_clear(&r);
	store_close(s);
	return rc < 0 ? EPH_EXIT_FAIL : EPH_EXIT_OK;
}
