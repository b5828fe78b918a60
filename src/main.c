/* src/main.c: global options, the command table, exit 0 ok / 1 failed run or check /
 * 2 usage or bad input. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "conf/conf.h"

static const struct cmd *const cmds[] = {
	&cmd_validate, &cmd_next,  &cmd_run,  &cmd_runs,  &cmd_show,   &cmd_logs,
	&cmd_results,  &cmd_agent, &cmd_gc,   &cmd_fetch, &cmd_daemon, &cmd_status,
	&cmd_cancel,   &cmd_mail,  &cmd_pack, &cmd_sizes, &cmd_cost,   &cmd_machines,
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: eph [-f FILE] COMMAND [ARGS...]\n"
	           "       eph COMMAND --help\n\n"
	           "Runs a team's scheduled scripts, each with the memory it needs, and keeps a "
	           "record of every run.\n\n"
	           "Options:\n"
	           "  -f, --file FILE  the jobs file (default: ./ephemeron.yaml)\n"
	           "  -h, --help       this help\n"
	           "  -V, --version    the version\n\n"
	           "Commands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i]->name, cmds[i]->summary);
	fprintf(f, "\nThe state directory is $EPH_STATE, else $XDG_STATE_HOME/ephemeron, else "
	           "~/.local/state/ephemeron (/var/lib/ephemeron for root).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_ctx ctx = { .conf_path = "ephemeron.yaml" };
	const struct cmd *c = NULL;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+f:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			ctx.conf_path = optarg;
			ctx.conf_path_given = true;
			break;
		case 'h':
			usage(stdout);
			return EPH_EXIT_OK;
		case 'V':
			printf("eph %s\n", EPH_VERSION);
			return EPH_EXIT_OK;
		default:
			if (optopt == 'f')
				fprintf(stderr, "eph: -f needs a FILE\n");
			else
				fprintf(stderr, "eph: unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			return EPH_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EPH_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[optind], cmds[i]->name) == 0)
			c = cmds[i];
	if (c == NULL) {
		fprintf(stderr, "eph: unknown command '%s' (see eph --help)\n", argv[optind]);
		return EPH_EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* a full reset for the command's own getopt_long */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cmd_usage(c, stdout, true);
			return EPH_EXIT_OK;
		}
	}
	rc = c->exec(&ctx, argc, argv);
	conf_free(ctx.conf);
	free(ctx.state_dir);
	fflush(stdout);
	if (ferror(stdout)) {
		fprintf(stderr, "eph: error writing output\n");
		return rc == EPH_EXIT_OK ? EPH_EXIT_FAIL : rc;
	}
	return rc;
}
