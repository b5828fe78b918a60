/* src/cmd/cmd_runs.c: `eph runs [JOB] [--limit N]`, the run history, newest first; and what
 * `eph show` and `eph logs` share with it (cmd_runs.h). */
#include "cmd/cmd_runs.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "daemon/ctl.h"
#include "exec/cloud_size.h"
#include "exec/exec.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

static int cmd_runs_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_runs = {
	.name = "runs",
	.usage = "runs [JOB] [--limit N] [--json]",
	.summary = "list the runs, newest first",
	.help = "Lists the runs of JOB (of every job without one), newest first: id, job, trigger,\n"
	        "start time (local), duration, state, peak memory against the limit, and the exit\n"
	        "code or the signal that ended the run.\n\n"
	        "Options:\n"
	        "  -n, --limit N  show at most N runs (default 20; 0 for all)\n"
	        "  --json         print an array of runs, each with every recorded field\n",
	.exec = cmd_runs_exec,
};

int
cmd_store_open(struct cmd_ctx *ctx, struct store **out)
{
	char *path = xasprintf("%s/eph.db", cmd_state_dir(ctx));
	struct diag d;
	int rc;

	diag_init(&d);
	rc = store_open_readonly(path, out, &d);
	if (rc < 0 && rc != -ENOENT) {
		if (diag_nerrors(&d) == 0)
			fprintf(stderr, "eph: %s: %s\n", path, strerror(-rc));
		diag_print(&d, stderr);
	}
	diag_free(&d);
	free(path);
	return rc;
}

/* Whether a daemon listens on STATE/eph.sock (a daemon still starting may not yet: it records
 * the same runs then, and the store keeps whichever comes first). */
static bool
cmd_daemon_listening(const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *path = ctl_socket_path(state);
	bool up = true; /* a path too long to reach: cannot tell, so do nothing */
	int fd;

	if (path == NULL)
		return true;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	free(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
		     (errno != ENOENT && errno != ECONNREFUSED);
		close(fd);
	}
	return up;
}

void
cmd_settle(struct cmd_ctx *ctx)
{
	const char *state = cmd_state_dir(ctx);
	char *path = xasprintf("%s/eph.db", state);
	struct store *s = NULL;
	struct diag d;

	diag_init(&d);
	if (access(path, F_OK) == 0 && !cmd_daemon_listening(state) &&
	    store_open(path, &s, &d) == 0)
		(void)exec_reconcile(s);
	store_close(s);
	diag_free(&d);
	free(path);
}

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

int
cmd_run_find(struct store *s, const char *arg, struct store_run *out)
{
	int64_t id;

	switch (units_parse_count(arg, 1, INT64_MAX, &id)) {
	case 0:
		return store_run_get(s, id, out);
	case -ERANGE:
		return -ENOENT; /* digits, so an id, and no run has it */
	default:
		return store_run_latest(s, arg, out);
	}
}

int
cmd_run_not_found(const char *cmd, const char *arg, const struct store *s)
{
	if (s == NULL)
		fprintf(stderr, "eph %s: no runs yet\n", cmd);
	else if (all_digits(arg))
		fprintf(stderr, "eph %s: no run %s\n", cmd, arg);
	else
		fprintf(stderr, "eph %s: no run %s: it is neither a run id nor a job with runs\n",
		        cmd, arg);
	return EPH_EXIT_USAGE;
}

void
cmd_signal_name(int sig, char *out, size_t n)
{
	const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;

	if (abbrev != NULL)
		snprintf(out, n, "SIG%s", abbrev);
	else
		snprintf(out, n, "signal %d", sig);
}

void
cmd_local_time(double t, int seconds, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(out, n, seconds ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M", &tm) == 0)
		snprintf(out, n, "%lld", (long long)tt);
}

double
cmd_run_duration(const struct store_run *r)
{
	if (r->started_at <= 0)
		return -1;
	if (r->ended_at > 0)
		return r->ended_at - r->started_at;
	if (store_state_terminal(r->state))
		return -1;
	return clock_real() - r->started_at;
}

int
cmd_term_width(int fd)
{
	struct winsize ws;
	const char *c;

	if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if ((c = getenv("COLUMNS")) != NULL && all_digits(c)) {
		int w = atoi(c);

		if (w >= 20 && w <= 1000)
			return w;
	}
	return 80;
}

static json_t *
jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *
jint(int64_t v, int64_t none)
{
	return v != none ? json_integer(v) : json_null();
}

static json_t *
jreal(double v, double min)
{
	return v >= min ? json_real(v) : json_null();
}

double
cmd_phase_seconds(const struct store_phase *p)
{
	if (p->seconds >= 0)
		return p->seconds;
	if (p->started_at > 0 && p->ended_at >= p->started_at)
		return p->ended_at - p->started_at;
	return -1;
}

json_t *
cmd_run_json(const struct store_run *r)
{
	json_t *o = json_object(), *ph = json_object(), *pl = json_array();
	double dur = cmd_run_duration(r);

	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "job", jstr(r->job));
	json_object_set_new(o, "trigger", json_string(store_trigger_name(r->trigger)));
	json_object_set_new(o, "scheduled_at", jint(r->scheduled_at, 0));
	json_object_set_new(o, "attempt", json_integer(r->attempt));
	json_object_set_new(o, "state", json_string(store_state_name(r->state)));
	json_object_set_new(o, "terminal", json_boolean(store_state_terminal(r->state)));
	json_object_set_new(o, "reason", jstr(r->reason));
	json_object_set_new(o, "executor", jstr(r->executor));
	{
		double off = 0;
		char *host = cmd_run_host(r, &off);

		json_object_set_new(o, "host", jstr(host));
		if (host != NULL)
			json_object_set_new(o, "clock_offset", json_real(off));
		free(host);
	}
	json_object_set_new(o, "memory_limit", jint(r->memory_limit, 0));
	json_object_set_new(o, "memory_reason", jstr(r->memory_reason));
	json_object_set_new(o, "peak_bytes", jint(r->peak_bytes, -1));
	json_object_set_new(o, "peak_method", jstr(r->peak_method));
	json_object_set_new(o, "enforced", jstr(r->enforced));
	json_object_set_new(o, "exit_code", jint(r->exit_code, -1));
	json_object_set_new(o, "signal", jint(r->signal, 0));
	if (r->signal > 0) {
		char name[32];

		cmd_signal_name(r->signal, name, sizeof(name));
		json_object_set_new(o, "signal_name", json_string(name));
	} else {
		json_object_set_new(o, "signal_name", json_null());
	}
	json_object_set_new(o, "created_at", jreal(r->created_at, 1e-9));
	json_object_set_new(o, "started_at", jreal(r->started_at, 1e-9));
	json_object_set_new(o, "ended_at", jreal(r->ended_at, 1e-9));
	json_object_set_new(o, "duration", jreal(dur, 0));
	/* "phases": {name: seconds}, source, runtime and exec always there (null when the
	 * phase did not run), as before the phases had a table; "phase_list": each phase with
	 * its times, in order */
	json_object_set_new(ph, "source", json_null());
	json_object_set_new(ph, "runtime", json_null());
	json_object_set_new(ph, "exec", json_null());
	for (size_t i = 0; i < r->nphases; i++) {
		const struct store_phase *p = &r->phases[i];

		json_object_set_new(ph, p->name, jreal(cmd_phase_seconds(p), 0));
		json_array_append_new(pl, json_pack("{s:s, s:o, s:o, s:o}", "name", p->name,
		                                    "started_at", jreal(p->started_at, 1e-9),
		                                    "ended_at", jreal(p->ended_at, 1e-9), "seconds",
		                                    jreal(p->seconds, 0)));
	}
	json_object_set_new(o, "phases", ph);
	json_object_set_new(o, "phase_list", pl);
	json_object_set_new(o, "cpu_user_seconds", jreal(r->cpu_user, 0));
	json_object_set_new(o, "cpu_system_seconds", jreal(r->cpu_system, 0));
	json_object_set_new(o, "commit", jstr(r->commit_id));
	json_object_set_new(o, "run_dir", jstr(r->run_dir));
	json_object_set_new(o, "log_path", jstr(r->log_path));
	json_object_set_new(o, "agent_pid", jint(r->agent_pid, 0));
	json_object_set_new(o, "agent_start", jint(r->agent_start, 0));
	json_object_set_new(o, "warning", jstr(r->warning));
	json_object_set_new(o, "jitter", json_integer(r->jitter));
	{
		struct cmd_machine m;

		if (cmd_run_machine(r, &m)) {
			json_t *mo = json_object();

			json_object_set_new(mo, "size", json_string(m.size));
			json_object_set_new(mo, "price_hourly", json_real(m.price_hourly));
			json_object_set_new(mo, "billed_seconds",
			                    m.seconds >= 0 ? json_real(m.seconds) : json_null());
			json_object_set_new(mo, "cost",
			                    m.seconds >= 0 ? json_real(m.cost) : json_null());
			json_object_set_new(o, "machine", mo);
		} else {
			json_object_set_new(o, "machine", json_null());
		}
		cmd_run_machine_clear(&m);
	}
	return o;
}

bool
cmd_run_machine(const struct store_run *r, struct cmd_machine *m)
{
	json_t *h = r->handle != NULL ? json_loads(r->handle, 0, NULL) : NULL;
	const char *size = json_string_value(json_object_get(h, "size"));
	double monthly = json_number_value(json_object_get(h, "price_monthly"));
	double created = json_number_value(json_object_get(h, "created"));

	memset(m, 0, sizeof(*m));
	m->seconds = -1;
	if (size == NULL || json_integer_value(json_object_get(h, "droplet")) <= 0) {
		json_decref(h);
		return false;
	}
	m->size = xstrdup(size);
	m->price_hourly = json_number_value(json_object_get(h, "price_hourly"));
	for (size_t i = 0; i < r->nphases; i++)
		if (strcmp(r->phases[i].name, "machine") == 0 && r->phases[i].seconds >= 0)
			m->seconds = r->phases[i].seconds;
	if (m->seconds >= 0)
		m->cost = cloud_bill_do(m->price_hourly, monthly, (int64_t)created, m->seconds);
	json_decref(h);
	return true;
}

void
cmd_run_machine_clear(struct cmd_machine *m)
{
	free(m->size);
	m->size = NULL;
}

char *
cmd_run_host(const struct store_run *r, double *clock_offset)
{
	json_t *h = r->handle != NULL ? json_loads(r->handle, 0, NULL) : NULL;
	const char *host = json_string_value(json_object_get(h, "host"));
	char *out = host != NULL ? xstrdup(host) : NULL;

	if (clock_offset != NULL)
		*clock_offset = json_number_value(json_object_get(h, "clock_offset"));
	json_decref(h);
	return out;
}

enum {
	COL_ID,
	COL_JOB,
	COL_ON,
	COL_TRIGGER,
	COL_STARTED,
	COL_DURATION,
	COL_STATE,
	COL_MEMORY,
	COL_EXIT,
	NCOLS
};

static const char *const col_names[NCOLS] = {
	"ID", "JOB", "ON", "TRIGGER", "STARTED", "DURATION", "STATE", "PEAK / LIMIT", "EXIT",
};

/* The display width of UTF-8 text S: one column per code point (job names are short text,
 * not wide scripts). */
static size_t
text_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* Fills the cells of one row; each cell is a new string. */
static void
row_cells(const struct store_run *r, char *cells[NCOLS])
{
	char a[64], b[64];
	double dur = cmd_run_duration(r);

	cells[COL_ID] = xasprintf("%lld", (long long)r->id);
	cells[COL_JOB] = xstrdup(r->job != NULL ? r->job : "?");
	/* the host of a remote run, else its executor ("local") */
	if ((cells[COL_ON] = cmd_run_host(r, NULL)) == NULL)
		cells[COL_ON] = xstrdup(r->executor != NULL ? r->executor : "local");
	cells[COL_TRIGGER] = xstrdup(store_trigger_name(r->trigger));
	if (r->started_at > 0) {
		cmd_local_time(r->started_at, 0, a, sizeof(a));
		cells[COL_STARTED] = xstrdup(a);
	} else {
		cells[COL_STARTED] = xstrdup("-");
	}
	if (dur >= 0) {
		units_format_duration(dur, a, sizeof(a));
		cells[COL_DURATION] = xstrdup(a);
	} else {
		cells[COL_DURATION] = xstrdup("-");
	}
	cells[COL_STATE] = xstrdup(store_state_name(r->state));
	if (r->peak_bytes >= 0)
		units_format_size((uint64_t)r->peak_bytes, a, sizeof(a));
	else
		snprintf(a, sizeof(a), "-");
	if (r->memory_limit > 0) {
		units_format_size((uint64_t)r->memory_limit, b, sizeof(b));
		cells[COL_MEMORY] = xasprintf("%s / %s", a, b);
	} else {
		cells[COL_MEMORY] = xstrdup(a);
	}
	if (r->signal > 0) {
		cmd_signal_name(r->signal, a, sizeof(a));
		cells[COL_EXIT] = xstrdup(a);
	} else if (r->exit_code >= 0) {
		cells[COL_EXIT] = xasprintf("%d", r->exit_code);
	} else {
		cells[COL_EXIT] = xstrdup("-");
	}
}

/* Prints S in W columns, cutting it with "~" when it is wider, padding when LEFT. */
static void
print_cell(const char *s, size_t w, bool left, bool last)
{
	size_t tw = text_width(s);

	if (tw > w) {
		size_t cols = 0;
		const char *p = s;

		/* copy w - 1 code points, then "~" */
		while (*p != '\0') {
			if (((unsigned char)*p & 0xc0) != 0x80) {
				if (cols == w - 1)
					break;
				cols++;
			}
			p++;
		}
		printf("%.*s~", (int)(p - s), s);
		tw = w;
	} else if (!left) {
		printf("%*s%s", (int)(w - tw), "", s);
	} else {
		fputs(s, stdout);
	}
	if (!last) {
		if (left)
			printf("%*s", (int)(w - tw), "");
		fputs("  ", stdout);
	}
}

static void
print_table(struct store_run *runs, size_t n)
{
	char *(*cells)[NCOLS] = xcalloc(n, sizeof(*cells));
	size_t w[NCOLS], total = 0, width = (size_t)cmd_term_width(STDOUT_FILENO);
	static const bool right[NCOLS] = { [COL_ID] = true, [COL_DURATION] = true };
	bool shown[NCOLS], remote = false;

	for (int c = 0; c < NCOLS; c++)
		w[c] = text_width(col_names[c]);
	for (size_t i = 0; i < n; i++) {
		char *host = cmd_run_host(&runs[i], NULL);

		remote = remote || host != NULL;
		free(host);
	}
	/* where a run ran is said when some of them ran elsewhere than here */
	for (int c = 0; c < NCOLS; c++)
		shown[c] = c != COL_ON || remote;
	for (size_t i = 0; i < n; i++) {
		row_cells(&runs[i], cells[i]);
		for (int c = 0; c < NCOLS; c++) {
			size_t tw = text_width(cells[i][c]);

			if (tw > w[c])
				w[c] = tw;
		}
	}
	for (int c = 0; c < NCOLS; c++)
		if (shown[c])
			total += w[c] + (c + 1 < NCOLS ? 2 : 0);
	/* On a narrow terminal, the job name gives way first (down to 8 columns). */
	if (isatty(STDOUT_FILENO) && total > width && w[COL_JOB] > 8) {
		size_t over = total - width;

		w[COL_JOB] = over < w[COL_JOB] - 8 ? w[COL_JOB] - over : 8;
	}
	for (int c = 0; c < NCOLS; c++)
		if (shown[c])
			print_cell(col_names[c], w[c], !right[c], c + 1 == NCOLS);
	fputc('\n', stdout);
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < NCOLS; c++) {
			if (shown[c])
				print_cell(cells[i][c], w[c], !right[c], c + 1 == NCOLS);
			free(cells[i][c]);
		}
		fputc('\n', stdout);
	}
	free(cells);
}

static int
cmd_runs_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_run *runs = NULL;
	struct store *s = NULL;
	const char *job = NULL;
	int64_t limit = 20;
	bool json = false;
	size_t n = 0;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		if (opt == 'j') {
			json = true;
		} else if (opt == 'n') {
			if (units_parse_count(optarg, 0, INT64_MAX, &limit) < 0)
				return cmd_usage_error(&cmd_runs,
				                       "--limit needs a number, not '%s'", optarg);
		} else if (optopt == 'n') {
			return cmd_usage_error(&cmd_runs, "--limit needs a number");
		} else {
			return cmd_usage_error(&cmd_runs, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_runs, "too many arguments");
	if (argc - optind == 1)
		job = argv[optind];

	cmd_settle(ctx);
	rc = cmd_store_open(ctx, &s);
	if (rc == -ENOENT) {
		if (json)
			puts("[]");
		else
			puts("no runs yet");
		return EPH_EXIT_OK;
	}
	if (rc < 0)
		return EPH_EXIT_FAIL;
	rc = store_runs_list(s, job, (size_t)limit, &runs, &n);
	if (rc < 0) {
		fprintf(stderr, "eph runs: reading the runs: %s\n", store_errmsg(s));
		store_close(s);
		return EPH_EXIT_FAIL;
	}
	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, cmd_run_json(&runs[i]));
		json_dumpf(a, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(a);
	} else if (n == 0) {
		if (job != NULL)
			printf("no runs of %s yet\n", job);
		else
			puts("no runs yet");
	} else {
		print_table(runs, n);
	}
	store_runs_free(runs, n);
	store_close(s);
	return EPH_EXIT_OK;
}
