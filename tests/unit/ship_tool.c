/* tests/unit/ship_tool.c: `ship-tool`, the e2e tests' handle on what a remote run carries
 * (source/archive.h, source/wheels.h) until the ssh executor calls those functions itself: it
 * calls them as that executor will, in a process of its own, and prints what they gave.
 *   ship-tool archive STATE MIRROR COMMIT
 *       prints "PATH built|cached"
 *   ship-tool wheels STATE PYTHON VERSION|- REQUIREMENTS ROOT [PLATFORM]
 *       prints "PATH PIPWHEEL VERSION built|cached"
 * On failure: the message on stderr, exit 1 (3 for wheels_prepare's -ENOPKG: a requirement
 * with no wheel). Test-only: not installed, not part of eph. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/archive.h"
#include "source/wheels.h"
#include "util/diag.h"

static int
fail(struct diag *d, int rc)
{
	fprintf(stderr, "ship-tool: %s (%s)\n", diag_nerrors(d) > 0 ? d->items[0].msg : "?",
	        strerror(-rc));
	diag_free(d);
	return rc == -ENOPKG ? 3 : 1;
}

int
main(int argc, char **argv)
{
	struct diag d;
	int rc;

	diag_init(&d);
	if (argc == 5 && strcmp(argv[1], "archive") == 0) {
		struct archive a;

		if ((rc = archive_get(argv[2], argv[3], argv[4], 0, &a, &d)) < 0)
			return fail(&d, rc);
		printf("%s %s\n", a.path, a.built ? "built" : "cached");
		archive_release(&a);
	} else if ((argc == 7 || argc == 8) && strcmp(argv[1], "wheels") == 0) {
		struct wheels_opts o = {
			.state_dir = argv[2],
			.python = argv[3],
			.target_version = strcmp(argv[4], "-") == 0 ? NULL : argv[4],
			.requirements = argv[5],
			.root = argv[6],
			.platform = argc == 8 ? argv[7] : NULL,
		};
		struct wheels w;

		if ((rc = wheels_prepare(&o, &w, &d)) < 0)
			return fail(&d, rc);
		printf("%s %s %s %s\n", w.path, w.pip, w.version, w.built ? "built" : "cached");
		wheels_release(&w);
	} else {
		fprintf(stderr, "usage: ship-tool archive STATE MIRROR COMMIT\n"
		                "       ship-tool wheels STATE PYTHON VERSION|- REQUIREMENTS ROOT "
		                "[PLATFORM]\n");
		return 2;
	}
	diag_free(&d);
	return 0;
}
