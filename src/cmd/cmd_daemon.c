/* src/cmd/cmd_daemon.c: `eph daemon [FILE]`, the scheduler, with its jobs file from the disk or
 * from a repository (--from-repo). */
#include <getopt.h>
#include <stdio.h>

#include "cmd/cmd.h"
#include "conf/conf.h"
#include "daemon/daemon.h"
#include "util/diag.h"
#include "util/instance.h"

static int cmd_daemon_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_daemon = {
	.name = "daemon",
	.usage = "daemon [FILE] [--log-json]\n"
	         "daemon --from-repo REPO [--branch BRANCH] [FILE] [--log-json]",
	.summary = "run the scheduler: every job on its schedule",
	.help = "Runs every job of FILE (else -f FILE, else ./ephemeron.yaml) on its schedule,\n"
	        "with its concurrency, catch-up, jitter, retry and memory-admission policies, until\n"
	        "SIGTERM or SIGINT; running agents are left to finish and collected at the next\n"
	        "start. SIGHUP, or a change of the file, reloads it (a file with errors is logged\n"
	        "and the last good configuration keeps running). One daemon per state directory.\n"
	        "The log goes to stderr, one line per event. See docs/daemon.md.\n\n"
	        "With --from-repo, the jobs file is FILE (default ephemeron.yaml) in the\n"
	        "repository REPO (a URL or the path of a git repository) at the head of BRANCH\n"
	        "(default: the remote's default branch): fetched at start and every\n"
	        "source.refresh, and a new commit reloads it. Jobs whose source is that\n"
	        "repository (a jobs file without source.repo) run the commit their configuration\n"
	        "came from. A commit whose file has errors is reported once and the last good\n"
	        "commit's jobs keep running, also across restarts.\n\n"
	        "Exit status: 0 after a clean stop, 1 when it could not start.\n\n"
	        "Options:\n"
	        "  --from-repo REPO  read the jobs file from the repository REPO\n"
	        "  --branch BRANCH   with --from-repo: the branch to follow\n"
	        "  --log-json        log JSON lines instead of text\n",
	.exec = cmd_daemon_exec,
};

static int
cmd_daemon_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log-json", no_argument, NULL, 'j' },
		{ "from-repo", required_argument, NULL, 'r' },
		{ "branch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_opts o = { 0 };
	char id[INSTANCE_ID_LEN + 1];
	struct diag d;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			o.log_json = true;
			break;
		case 'r':
			o.from_repo = optarg;
			break;
		case 'b':
			o.branch = optarg;
			break;
		default:
			return cmd_usage_error(&cmd_daemon, "unknown option '%s'",
			                       argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return cmd_usage_error(&cmd_daemon, "too many arguments");
	o.conf_path = argc - optind == 1 ? argv[optind] : ctx->conf_path;
	if (o.branch != NULL && o.from_repo == NULL)
		return cmd_usage_error(&cmd_daemon, "--branch goes with --from-repo");
	if (o.from_repo != NULL && !daemon_repo_path_ok(o.conf_path))
		return cmd_usage_error(&cmd_daemon,
		                       "with --from-repo, FILE is a path inside the repository "
		                       "(relative, without \"..\"), not '%s'",
		                       o.conf_path);
	/* every jobs file it loads has its commit: jobs on remote executors need one */
	if (o.from_repo != NULL)
		conf_assume_from_repo(true);
	o.state_dir = cmd_state_dir(ctx);
	/* the scheduler's instance id, made at its first start: its remote runs are named
	 * after it */
	diag_init(&d);
	if (instance_get(o.state_dir, id, &d) < 0) {
		diag_print(&d, stderr);
		diag_free(&d);
		return EPH_EXIT_FAIL;
	}
	diag_free(&d);
	return daemon_run(&o) == 0 ? EPH_EXIT_OK : EPH_EXIT_FAIL;
}
