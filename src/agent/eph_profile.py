# src/agent/eph_profile.py: eph's memory profiler hook (docs/profile.md), embedded into the
# agent, which writes it for a profiled run as RUN_DIR/profile-hook/sitecustomize.py, puts
# that directory first on PYTHONPATH and sets EPH_PROFILE_DIR=RUN_DIR. Without that variable it
# does nothing but run the sitecustomize it shadows. With it, it switches tracemalloc on and a
# background thread writes the top allocation sites held at the highest traced memory seen
# into RUN_DIR/profile.json (tmp + os.replace, so a kill leaves the last whole snapshot). The
# variable is taken out of the environment, so only this interpreter is profiled, not the
# Python processes it starts.
import os
import sys


def _eph_profile():
    out_dir = os.environ.pop("EPH_PROFILE_DIR", None)
    if not out_dir:
        return
    import ast
    import atexit
    import json
    import threading
    import time
    import tracemalloc

    path = os.path.join(out_dir, "profile.json")
    tmp = path + ".tmp.%d" % os.getpid()
    top_n = 10
    step_min = 8 << 20  # a new snapshot when traced memory grew by 8 MiB ...
    step_frac = 0.05  # ... or 5% over the last one, whichever is larger
    tick = 0.05  # the traced memory is looked at every 50 ms
    state = {"traced": 0, "sites": [], "overhead": 0, "snapshots": 0, "snap_s": 0.0}
    funcs = {}  # file -> [(first line, last line, name)]
    skip = (tracemalloc.__file__, __file__, "<unknown>")
    limit = {"until": 0.0}  # no snapshot before this (monotonic): the rate limit

    def enclosing(filename, line):
        spans = funcs.get(filename)
        if spans is None:
            spans = []
            try:
                with open(filename, "rb") as f:
                    tree = ast.parse(f.read(), filename)
                for n in ast.walk(tree):
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        spans.append((n.lineno, getattr(n, "end_lineno", n.lineno), n.name))
            except Exception:
                pass
            funcs[filename] = spans
        best = None
        for first, last, name in spans:
            if first <= line <= last and (best is None or first >= best[0]):
                best = (first, name)
        return best[1] if best is not None else "<module>"

    def write(started=False):
        doc = {
            "version": 1,
            "pid": os.getpid(),
            "argv0": sys.argv[0] if sys.argv else "",
            "cwd": os.getcwd(),
            "traced_bytes": state["traced"],
            "profiler_bytes": state["overhead"],
            "snapshots": state["snapshots"],
            "snapshot_seconds": round(state["snap_s"], 3),
            "sites": state["sites"],
        }
        if started:
            doc["started"] = True
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)

    def snapshot(traced):
        t0 = time.thread_time()  # this thread's CPU time: not its waits for the GIL
        snap = tracemalloc.take_snapshot()  # (filter_traces is slow Python: filter below)
        stats = [s for s in snap.statistics("lineno")[:top_n + 4]
                 if s.traceback[0].filename not in skip][:top_n]
        took = time.thread_time() - t0
        sites = []
        for s in stats:
            fr = s.traceback[0]
            sites.append({
                "file": fr.filename,
                "line": fr.lineno,
                "function": enclosing(fr.filename, fr.lineno),
                "bytes": s.size,
                "count": s.count,
            })
        del snap, stats
        state["sites"] = sites
        state["traced"] = traced
        state["snapshots"] += 1
        state["snap_s"] += took
        # rate limit: a snapshot costs time in proportion to the live allocations; waiting
        # 9x its time keeps the profiler under ~10% of the run's (the function lookups are
        # cached per file: not counted)
        limit["until"] = time.monotonic() + 9 * took

    def watch():
        while True:
            time.sleep(tick)
            try:
                traced = tracemalloc.get_traced_memory()[0]
                state["overhead"] = max(state["overhead"], tracemalloc.get_tracemalloc_memory())
                last = state["traced"]
                if traced < last + max(step_min, int(last * step_frac)):
                    continue
                if time.monotonic() < limit["until"]:
                    continue
                snapshot(traced)
                write()
            except Exception:
                return

    tracemalloc.start(1)
    try:
        write(started=True)
    except OSError:
        tracemalloc.stop()
        return

    def at_exit():
        try:
            traced = tracemalloc.get_traced_memory()[0]
            state["overhead"] = max(state["overhead"], tracemalloc.get_tracemalloc_memory())
            if (traced > state["traced"] + max(step_min, int(state["traced"] * step_frac))
                    and time.monotonic() >= limit["until"]):
                snapshot(traced)
            write()
        except Exception:
            pass

    atexit.register(at_exit)
    threading.Thread(target=watch, name="eph-profile", daemon=True).start()


try:
    _eph_profile()
except Exception as e:  # the job's run goes on unprofiled
    sys.stderr.write("eph: memory profiler not started: %s\n" % e)


def _eph_chain():
    # run the sitecustomize this one shadows, if any
    here = os.path.dirname(os.path.abspath(__file__))
    me = sys.modules.pop("sitecustomize", None)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        import sitecustomize  # noqa: F401
    except ImportError:
        if me is not None:
            sys.modules["sitecustomize"] = me
    finally:
        sys.path[:] = saved


if __name__ == "sitecustomize":  # not when run from the venv's eph-profile.pth
    _eph_chain()
