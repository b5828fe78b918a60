/* src/cmd/cmd_validate.c: `eph validate [FILE]`, parse and check the jobs file. */
#include <getopt.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "conf/conf.h"
#include "util/diag.h"
#include "util/xalloc.h"

static int cmd_validate_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_validate = {
	.name = "validate",
	.usage = "validate [FILE] [--json]",
	.summary = "parse and check the jobs file, reporting every problem as FILE:LINE:COL",
	.help = "FILE defaults to the global -f FILE, else ./ephemeron.yaml.\n"
	        "On success prints \"FILE: N jobs OK\" and exits 0; otherwise prints every problem\n"
	        "and exits 2.\n\n"
	        "Options:\n"
	        "  --json  print {\"file\":…, \"ok\":…, \"jobs\":N, \"errors\":[{file,line,col,message}]}\n",
	.exec = cmd_validate_exec,
};

static int
validate_json(const char *path, const struct conf *c, struct diag *d)
{
	json_t *o = json_object(), *errs = json_array();

	json_object_set_new(o, "file", json_string(path));
	json_object_set_new(o, "ok", json_boolean(c != NULL));
	json_object_set_new(o, "jobs", json_integer(c != NULL ? (json_int_t)c->njobs : 0));
	diag_sort(d);
	for (size_t i = 0; i < d->n; i++) {
		json_t *e = json_object();

		if (d->items[i].file != NULL)
			json_object_set_new(e, "file", json_string(d->items[i].file));
		json_object_set_new(e, "line", json_integer(d->items[i].line));
		json_object_set_new(e, "col", json_integer(d->items[i].col));
		json_object_set_new(e, "message", json_string(d->items[i].msg));
		json_array_append_new(errs, e);
	}
	json_object_set_new(o, "errors", errs);
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
	return c != NULL ? EPH_EXIT_OK : EPH_EXIT_USAGE;
}

static int
cmd_validate_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = ctx->conf_path;
	struct conf *c = NULL;
	bool json = false;
	struct diag d;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'j')
			json = true;
		else
			return cmd_usage_error(&cmd_validate, "unknown option '%s'",
			                       argv[optind - 1]);
	}
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_validate, "too many arguments");
	if (argc - optind == 1)
		path = argv[optind];
	diag_init(&d);
	rc = conf_load(path, &c, &d);
	if (json) {
		rc = validate_json(path, c, &d);
	} else if (rc < 0) {
		diag_print(&d, stderr);
		rc = EPH_EXIT_USAGE;
	} else {
		printf("%s: %zu job%s OK\n", path, c->njobs, c->njobs == 1 ? "" : "s");
		rc = EPH_EXIT_OK;
	}
	diag_free(&d);
	conf_free(c);
	return rc;
}
