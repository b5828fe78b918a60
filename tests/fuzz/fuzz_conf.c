/* tests/fuzz/fuzz_conf.c: conf_load_mem on arbitrary bytes. Every input must either load or
 * fail with at least one diagnostic, never crash, leak or print, and report a bounded number
 * of errors (the loader stops after 100: none is ever dropped by the diag's own cap). Its
 * time is bounded by the suite's -timeout; the seeds include small versions of the files
 * of bench/conf_hostile.py, which once took seconds to minutes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "conf/conf.h"
#include "util/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libfyaml 0.7.12 (Debian 12) leaks 4 KiB in fy_atom_format_text when a scalar comes out
 * longer than it measured it, as a single-quoted one with a long run of '' does (fixed
 * upstream: "atom: Call iter_finish on error in fy_atom_format_text()"). Its frames cannot
 * be unwound without slowing every malloc, so the leaks of allocations made inside libfyaml
 * are left to the unit tests (ASan and valgrind, no suppression), and the fuzzer goes on
 * past this one instead of stopping at it. */
const char *
__lsan_default_suppressions(void)
{
	return "leak:libfyaml.so\n";
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = NULL;
	struct diag d;
	int rc;

	diag_init(&d);
	rc = conf_load_mem("fuzz.yaml", "/", (const char *)data, size, &c, &d);
	if (rc == 0) {
		if (c == NULL || diag_nerrors(&d) != 0)
			abort();
		for (size_t i = 0; i < c->njobs; i++)
			if (conf_job_find(c, c->jobs[i].name) != &c->jobs[i])
				abort();
	} else if (c != NULL || diag_nerrors(&d) == 0 || d.dropped > 0 || d.n > 101) {
		abort();
	}
	/* formatting every message exercises the quoting of user text */
	for (size_t i = 0; i < d.n; i++)
		free(diag_format(&d, i));
	conf_free(c);
	diag_free(&d);
	return 0;
}
