/* src/cmd/cmd_status.c: `eph status`, every job's schedule, next fire, current state and last
 * outcome — from the daemon when one is running, else from the jobs file and the store. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_runs.h"
#include "conf/conf.h"
#include "daemon/ctl.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "store/outbox.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/instance.h"
#include "util/units.h"
#include "util/xalloc.h"

static int cmd_status_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_status = {
	.name = "status",
	.usage = "status [--json]",
	.summary = "every job: schedule, next fire, state and last outcome",
	.help = "Asks the daemon of the state directory for every job's schedule, next fire,\n"
	        "current state (running, waiting, idle) and last outcome. With no daemon running,\n"
	        "says \"daemon: not running\" and shows the next fires computed from the jobs file\n"
	        "and the last outcomes from the store. Then, if mail was given up (not accepted\n"
	        "within mail.max_age), how many messages: eph mail list --failed shows them.\n"
	        "The instance is this scheduler's id, made at its first start (none before).\n\n"
	        "Options:\n"
	        "  --json  print one JSON object: {\"daemon\": {...}, \"instance\": ID or null,\n"
	        "          \"jobs\": [...], \"mail\": {\"failed\": N}}\n",
	.exec = cmd_status_exec,
};

/* The jobs as the daemon's status reply has them, from the jobs file and the store. */
static json_t *
status_offline(struct cmd_ctx *ctx, struct store *st)
{
	json_t *jobs = json_array();
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; i < ctx->conf->njobs; i++) {
		const struct conf_job *j = &ctx->conf->jobs[i];
		json_t *o = json_object();
		struct store_run *runs = NULL;
		size_t n = 0;
		int64_t next;
		char iso[TZ_ISO8601_MAX];
		bool live = false;

		json_object_set_new(o, "job", json_string(j->name));
		json_object_set_new(o, "schedule", json_string(j->schedule));
		json_object_set_new(o, "timezone", json_string(tz_name(j->tz)));
		if (cronexpr_next(j->cron, j->tz, now, &next) == 0) {
			tz_format_iso8601(j->tz, next, iso, sizeof(iso));
			json_object_set_new(o, "next", json_string(iso));
		} else {
			json_object_set_new(o, "next", json_null());
		}
		json_object_set_new(o, "last", json_null());
		if (st != NULL && store_runs_list(st, j->name, 20, &runs, &n) == 0) {
			for (size_t k = 0; k < n; k++) {
				const struct store_run *r = &runs[k];

				if (!store_state_terminal(r->state)) {
					live = true;
					continue;
				}
				json_object_set_new(o, "last",
				                    json_pack("{s:I, s:s, s:f, s:f, s:I, s:s?}",
				                              "run", (json_int_t)r->id, "state",
				                              store_state_name(r->state),
				                              "started_at", r->started_at,
				                              "ended_at", r->ended_at, "peak_bytes",
				                              (json_int_t)r->peak_bytes, "reason",
				                              r->reason));
				break;
			}
			store_runs_free(runs, n);
		}
		/* without a daemon, a non-terminal run is a foreground one (or one to collect) */
		json_object_set_new(o, "state", json_string(live ? "running" : "idle"));
		json_array_append_new(jobs, o);
	}
	return jobs;
}

/* The mail given up (state failed in the outbox): {"failed": N}. The store ST may be NULL
 * (none yet): no mail then. */
static json_t *
status_mail(struct store *st)
{
	struct outbox_msg *v = NULL;
	size_t n = 0;

	if (st != NULL && store_outbox_list(st, OUTBOX_FAILED, 0, &v, &n) < 0)
		return json_pack("{s:n}", "failed");
	outbox_msgs_free(v, n);
	return json_pack("{s:I}", "failed", (json_int_t)n);
}

/* The instance id of STATE, or null when none was made yet; NULL (printed) when it cannot be
 * read. */
static json_t *
status_instance(const char *state)
{
	char id[INSTANCE_ID_LEN + 1];
	struct diag d;
	int rc;

	diag_init(&d);
	rc = instance_read(state, id, &d);
	if (rc < 0 && rc != -ENOENT)
		diag_print(&d, stderr);
	diag_free(&d);
	if (rc == -ENOENT)
		return json_null();
	return rc == 0 ? json_string(id) : NULL;
}

static void
status_print(json_t *daemon, json_t *instance, json_t *jobs, json_t *mail)
{
	json_int_t failed = json_integer_value(json_object_get(mail, "failed"));

	size_t i, wj = 3, ws = 8;
	json_t *o;

	if (json_is_true(json_object_get(daemon, "running")))
		printf("daemon: running (pid %lld, %s)\n",
		       (long long)json_integer_value(json_object_get(daemon, "pid")),
		       json_string_value(json_object_get(daemon, "conf")));
	else
		printf("daemon: not running\n");
	printf("instance: %s\n",
	       json_is_string(instance) ? json_string_value(instance) : "none yet");
	json_array_foreach(jobs, i, o)
	{
		size_t a = strlen(json_string_value(json_object_get(o, "job")));
		size_t b = strlen(json_string_value(json_object_get(o, "schedule")));

		wj = a > wj ? a : wj;
		ws = b > ws ? b : ws;
	}
	printf("%-*s  %-*s  %-25s  %-8s  %s\n", (int)wj, "JOB", (int)ws, "SCHEDULE", "NEXT",
	       "STATE", "LAST");
	json_array_foreach(jobs, i, o)
	{
		json_t *last = json_object_get(o, "last");
		const char *next = json_string_value(json_object_get(o, "next"));
		char lastbuf[160] = "-";

		if (json_is_object(last)) {
			double s = json_real_value(json_object_get(last, "started_at"));
			double e = json_real_value(json_object_get(last, "ended_at"));
			json_int_t peak = json_integer_value(json_object_get(last, "peak_bytes"));
			char dur[32] = "-", pk[32] = "-", when[32] = "-";

			if (s > 0 && e >= s)
				units_format_duration(e - s, dur, sizeof(dur));
			if (peak >= 0 && json_is_integer(json_object_get(last, "peak_bytes")))
				units_format_size((uint64_t)peak, pk, sizeof(pk));
			if (e > 0)
				cmd_local_time(e, 1, when, sizeof(when));
			snprintf(lastbuf, sizeof(lastbuf), "%s %s (run %lld, %s, peak %s)",
			         json_string_value(json_object_get(last, "state")), when,
			         (long long)json_integer_value(json_object_get(last, "run")), dur,
			         pk);
		}
		printf("%-*s  %-*s  %-25s  %-8s  %s\n", (int)wj,
		       json_string_value(json_object_get(o, "job")), (int)ws,
		       json_string_value(json_object_get(o, "schedule")), next != NULL ? next : "-",
		       json_string_value(json_object_get(o, "state")), lastbuf);
	}
	if (failed > 0)
		printf("mail: %lld message(s) given up (see eph mail list --failed)\n",
		       (long long)failed);
}

static int
cmd_status_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *req = json_pack("{s:s}", "cmd", "status"), *resp = NULL, *daemon, *jobs, *mail;
	json_t *instance;
	int exit = EPH_EXIT_OK;
	struct store *st = NULL;
	bool json = false;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'j') {
			json_decref(req);
			return cmd_usage_error(&cmd_status, "unknown option '%s'",
			                       argv[optind - 1]);
		}
		json = true;
	}
	if (argc - optind > 0) {
		json_decref(req);
		return cmd_usage_error(&cmd_status, "too many arguments");
	}
	rc = ctl_request(cmd_state_dir(ctx), req, &resp);
	json_decref(req);
	if (rc == 0 && json_is_true(json_object_get(resp, "ok"))) {
		daemon = json_pack("{s:b, s:O, s:O}", "running", 1, "pid",
		                   json_object_get(resp, "pid"), "conf",
		                   json_object_get(resp, "conf"));
		jobs = json_incref(json_object_get(resp, "jobs"));
		if (cmd_store_open(ctx, &st) < 0)
			st = NULL;
	} else if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED)) {
		fprintf(stderr, "eph status: the daemon did not answer: %s\n",
		        rc == 0 ? json_string_value(json_object_get(resp, "error"))
		                : strerror(-rc));
		json_decref(resp);
		return EPH_EXIT_FAIL;
	} else {
		if ((rc = cmd_load_conf(ctx)) != EPH_EXIT_OK)
			return rc;
		cmd_settle(ctx);
		rc = cmd_store_open(ctx, &st);
		if (rc < 0 && rc != -ENOENT)
			return EPH_EXIT_FAIL;
		daemon = json_pack("{s:b}", "running", 0);
		jobs = status_offline(ctx, st);
	}
	mail = status_mail(st);
	if ((instance = status_instance(cmd_state_dir(ctx))) == NULL) {
		instance = json_null();
		exit = EPH_EXIT_FAIL; /* said on stderr; the rest is still shown */
	}
	store_close(st);
	json_decref(resp);
	if (json) {
		json_t *all = json_pack("{s:o, s:o, s:o, s:o}", "daemon", daemon, "instance",
		                        instance, "jobs", jobs, "mail", mail);

		json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(all);
	} else {
		status_print(daemon, instance, jobs, mail);
		json_decref(instance);
		json_decref(daemon);
		json_decref(jobs);
		json_decref(mail);
	}
	return exit;
}
