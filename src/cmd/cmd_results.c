/* src/cmd/cmd_results.c: `eph results RUN|JOB [--to DIR] [--json]`, the files a run left in its
 * results directory ($EPH_RESULTS), listed or copied out; `--upload`, sent to results_store. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_mail.h"
#include "cmd/cmd_runs.h"
#include "conf/conf.h"
#include "rundir/results.h"
#include "store/store.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

static int cmd_results_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_results = {
	.name = "results",
	.usage = "results RUN|JOB [--to DIR] [--json]\n"
	         "results RUN|JOB --upload",
	.summary = "list a run's results (a job's latest run), copy them out or upload them",
	.help = "RUN is a run id; a JOB name means that job's latest run. A run's results are\n"
	        "the files its command wrote into $EPH_RESULTS (RUN_DIR/results). By default\n"
	        "prints one line a file: its size and its path under the results directory.\n\n"
	        "Options:\n"
	        "  --to DIR  copy them into DIR (made if missing), keeping their paths\n"
	        "  --json    {\"run\", \"dir\", \"files\": [{\"path\", \"size\"}]}\n"
	        "  --upload  upload them to the jobs file's results_store now, again if the\n"
	        "            store refused them (a key fixed since): exit 0 once they are there\n\n"
	        "Exits 2 when there is no such run, 1 when its run directory is gone or a copy\n"
	        "fails.\n",
	.exec = cmd_results_exec,
};

static void
print_list(const struct store_run *r, const struct results_file *f, size_t n, bool json)
{
	if (json) {
		json_t *o = json_object(), *a = json_array();

		json_object_set_new(o, "run", json_integer((json_int_t)r->id));
		json_object_set_new(o, "dir", json_sprintf("%s/%s", r->run_dir, RUNDIR_RESULTS));
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s,s:I}", "path", f[i].path, "size",
			                                   (json_int_t)f[i].size));
		json_object_set_new(o, "files", a);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(o);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char sz[32];

		units_format_size(f[i].size, sz, sizeof(sz));
		printf("%8s  %s\n", sz, f[i].path);
	}
}

/* The store, open for writing (--upload), or -ENOENT when there is none yet. */
static int
results_store_open(struct cmd_ctx *ctx, struct store **out)
{
	char *path = xasprintf("%s/eph.db", cmd_state_dir(ctx));
	struct diag d;
	int rc = -ENOENT;

	diag_init(&d);
	if (access(path, F_OK) == 0 && (rc = store_open(path, out, &d)) < 0)
		diag_print(&d, stderr);
	diag_free(&d);
	free(path);
	return rc;
}

static int
cmd_results_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "to", required_argument, NULL, 't' },
		{ "upload", no_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	struct store *st = NULL;
	struct store_run r;
	struct results_file *f = NULL;
	const char *to = NULL;
	bool json = false, upload = false;
	size_t n = 0;
	int opt, rc, ret = EPH_EXIT_OK;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'j')
			json = true;
		else if (opt == 't')
			to = optarg;
		else if (opt == 'u')
			upload = true;
		else if (optopt == 't')
			return cmd_usage_error(&cmd_results, "--to needs a directory");
		else
			return cmd_usage_error(&cmd_results, "unknown option '%s'",
			                       argv[optind - 1]);
	}
	if (argc - optind != 1)
		return cmd_usage_error(&cmd_results,
		                       argc - optind == 0 ? "which run?" : "too many arguments");
	if (to != NULL && *to == '\0')
		return cmd_usage_error(&cmd_results, "--to needs a directory");
	if (upload && (to != NULL || json))
		return cmd_usage_error(&cmd_results, "--upload goes alone");
	if (upload) {
		if ((rc = cmd_load_conf(ctx)) != EPH_EXIT_OK)
			return rc;
		if (ctx->conf->results_store.url == NULL) {
			fprintf(stderr, "eph results: %s has no results_store to upload to\n",
			        ctx->conf_path);
			return EPH_EXIT_USAGE;
		}
	}
	cmd_settle(ctx);
	rc = upload ? results_store_open(ctx, &st) : cmd_store_open(ctx, &st);
	if (rc == -ENOENT)
		return cmd_run_not_found("results", argv[optind], NULL);
	if (rc < 0)
		return EPH_EXIT_FAIL;
	rc = cmd_run_find(st, argv[optind], &r);
	if (rc == -ENOENT) {
		rc = cmd_run_not_found("results", argv[optind], st);
		store_close(st);
		return rc;
	}
	if (rc < 0) {
		fprintf(stderr, "eph results: reading the run: %s\n", store_errmsg(st));
		store_close(st);
		return EPH_EXIT_FAIL;
	}
	if (upload) {
		ret = cmd_upload_again(ctx, st, &r);
	} else if (r.run_dir == NULL) {
		fprintf(stderr, "eph results: run %lld has no run directory (removed by eph gc?)\n",
		        (long long)r.id);
		ret = EPH_EXIT_FAIL;
	} else if ((rc = results_list(r.run_dir, &f, &n)) < 0) {
		fprintf(stderr, "eph results: reading %s/%s: %s\n", r.run_dir, RUNDIR_RESULTS,
		        strerror(-rc));
		ret = EPH_EXIT_FAIL;
	} else if (to != NULL) {
		char *failed = NULL;

		if ((rc = results_copy(r.run_dir, f, n, to, &failed)) < 0) {
			fprintf(stderr, "eph results: copying %s into %s: %s\n",
			        failed != NULL ? failed : "?", to, strerror(-rc));
			ret = EPH_EXIT_FAIL;
		} else if (json) {
			print_list(&r, f, n, true);
		} else {
			fprintf(stderr, "eph results: %zu file%s copied into %s\n", n,
			        n == 1 ? "" : "s", to);
		}
		free(failed);
	} else {
		print_list(&r, f, n, json);
	}
	results_files_free(f, n);
	store_run_clear(&r);
	store_close(st);
	return ret;
}
