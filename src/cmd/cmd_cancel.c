/* src/cmd/cmd_cancel.c: `eph cancel RUN`, through the daemon. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "daemon/ctl.h"
#include "util/units.h"

static int cmd_cancel_exec(struct cmd_ctx *ctx, int argc, char **argv);

const struct cmd cmd_cancel = {
	.name = "cancel",
	.usage = "cancel RUN",
	.summary = "cancel a live run of the daemon",
	.help = "Asks the daemon to cancel run RUN: a run still waiting is recorded \"cancelled\"\n"
	        "at once; a running one's agent stops the command (SIGTERM, then SIGKILL after the\n"
	        "job's kill_grace) and records \"cancelled\". Needs a running daemon; a foreground\n"
	        "`eph run` is cancelled with Ctrl-C in its own terminal.\n\n"
	        "Exit status: 0 when the cancel was sent, 1 when it could not be (no daemon, the\n"
	        "run is not live), 2 for bad usage.\n",
	.exec = cmd_cancel_exec,
};

static int
cmd_cancel_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	json_t *req, *resp = NULL;
	int64_t id;
	int rc;

	if (argc != 2)
		return cmd_usage_error(&cmd_cancel, argc < 2 ? "which RUN?" : "too many arguments");
	if (units_parse_count(argv[1], 1, INT64_MAX, &id) < 0)
		return cmd_usage_error(&cmd_cancel, "RUN must be a run id (digits only), not '%s'",
		                       argv[1]);
	req = json_pack("{s:s, s:I}", "cmd", "cancel", "run", (json_int_t)id);
	rc = ctl_request(cmd_state_dir(ctx), req, &resp);
	json_decref(req);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		fprintf(stderr, "eph cancel: no daemon is running (state directory %s)\n",
		        cmd_state_dir(ctx));
		return EPH_EXIT_FAIL;
	}
	if (rc < 0) {
		fprintf(stderr, "eph cancel: the daemon did not answer: %s\n", strerror(-rc));
		return EPH_EXIT_FAIL;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "eph cancel: %s\n",
		        json_string_value(json_object_get(resp, "error")));
		json_decref(resp);
		return EPH_EXIT_FAIL;
	}
	printf("cancelling run %lld\n", (long long)id);
	json_decref(resp);
	return EPH_EXIT_OK;
}
