/* src/eph_agent.c: `eph-agent RUN_DIR`, the agent alone, as executors start it.
 *
 * The same code as `eph agent RUN_DIR`, linked without the store, the YAML parser and the mail
 * sender's TLS stack: an agent lives as long as its run, so what it maps stays resident
 * (about 3 MiB instead of 9) and it starts a few milliseconds sooner. The local executor runs
 * the eph-agent installed next to eph, else `eph agent`. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"

int
main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: eph-agent RUN_DIR\n\nExecutes one run: what `eph agent RUN_DIR` does "
		       "(see eph agent --help).\n");
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: eph-agent RUN_DIR\n");
		return 2;
	}
	return agent_main(argv[1]);
}
