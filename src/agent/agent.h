/* src/agent/agent.h: `eph agent RUN_DIR`, the only thing that executes user code (DESIGN.md
 * "The run directory", "Memory"; the files it writes: docs/rundir.md). */
#ifndef EPH_AGENT_AGENT_H
#define EPH_AGENT_AGENT_H

/* Runs the run described by DIR/spec.json (DIR absolute: a relative or empty one is refused
 * with 2 before anything is written) and writes DIR/agent.pid, output.log, events.jsonl
 * and result.json. Returns the exit status: 0 if the command succeeded, 1 if not, 2 if the
 * spec was bad or the run directory unusable (a result.json saying why is still written if it
 * can be). Messages for a person (only when nothing else can carry them) go to stderr. */
int agent_main(const char *dir);

#endif
