/* src/cmd/cmd_agent.c: `eph agent RUN_DIR`, what executors start to execute one run. */
#include <getopt.h>
#include <stdio.h>

#include "agent/agent.h"
#include "cmd/cmd.h"

static int
cmd_agent_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	(void)ctx;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			cmd_usage(&cmd_agent, stdout, true);
			return EPH_EXIT_OK;
		default:
			return cmd_usage_error(&cmd_agent, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return cmd_usage_error(&cmd_agent, "needs exactly one RUN_DIR");
	return agent_main(argv[optind]);
}

const struct cmd cmd_agent = {
	.name = "agent",
	.usage = "agent RUN_DIR",
	.summary = "execute one run (internal: what executors start)",
	.help = "Reads RUN_DIR/spec.json, runs the command under its memory limit and writes\n"
	        "RUN_DIR/agent.pid, output.log, events.jsonl and finally result.json\n"
	        "(docs/rundir.md). Exit status: 0 if the command succeeded, 1 if not, 2 for a bad\n"
	        "spec or an unusable run directory.\n\n"
	        "Environment:\n"
	        "  EPH_ENFORCE=sampled   skip cgroups: sample the process tree's RSS instead\n"
	        "  EPH_CGROUP_ROOT=DIR   create the run's cgroup under DIR (a cgroup2 directory or\n"
	        "                        a cgroup1 memory directory) instead of the agent's own\n"
	        "                        cgroup or <mount>/ephemeron\n"
	        "SIGTERM or SIGINT cancel the run: the command gets SIGTERM, then SIGKILL after\n"
	        "kill_grace seconds, and the run ends as \"cancelled\".\n",
	.exec = cmd_agent_exec,
};
