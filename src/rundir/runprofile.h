/* src/rundir/runprofile.h: where a profiled run's memory went (docs/profile.md), from the
 * "profile" or "unprofiled" event the agent wrote into its events.jsonl. */
#ifndef EPH_RUNDIR_RUNPROFILE_H
#define EPH_RUNDIR_RUNPROFILE_H
#include <stdint.h>

/* The text for a person, one line per allocation site ("hold.py:6 in load_all: 300 MiB of
 * the 318 MiB peak"), each line starting with INDENT and ending in '\n'; or one line
 * "unprofiled: REASON"; NULL when the run in DIR has neither event (not profiled). PEAK:
 * the run's recorded peak (bytes; 0 = take the event's). Owned by the caller. */
char *runprofile_text(const char *dir, uint64_t peak, const char *indent);

#endif
