/* src/cmd/cmd_daemon.c: `eph daemon [FILE]`, the scheduler. */
#include <getopt.h>
#include <stdio.h>

#include "cmd/cmd.h"
#include "daemon/daemon.h"

static int cmd_daemon_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_daemon = {
	.name = "daemon",
	.usage = "daemon [FILE] [--log-json]",
	.summary = "run the scheduler: every job on its schedule",
	.help = "Runs every job of FILE (else -f FILE, else ./ephemeron.yaml) on its schedule,\n"
	        "with its concurrency, catch-up, jitter, retry and memory-admission policies, until\n"
	        "SIGTERM or SIGINT; running agents are left to finish and collected at the next\n"
	        "start. SIGHUP, or a change of the file, reloads it (a file with errors is logged\n"
	        "and the last good configuration keeps running). One daemon per state directory.\n"
	        "The log goes to stderr, one line per event. See docs/daemon.md.\n\n"
	        "Exit status: 0 after a clean stop, 1 when it could not start.\n\n"
	        "Options:\n"
	        "  --log-json  log JSON lines instead of text\n",
	.exec = cmd_daemon_exec,
};

static int
cmd_daemon_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log-json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_opts o = { 0 };
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			o.log_json = true;
			break;
		default:
			return cmd_usage_error(&cmd_daemon, "unknown option '%s'",
			                       argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_daemon, "too many arguments");
	o.conf_path = argc - optind == 1 ? argv[optind] : ctx->conf_path;
	o.state_dir = cmd_state_dir(ctx);
	return daemon_run(&o) == 0 ? EPH_EXIT_OK : EPH_EXIT_FAIL;
}
