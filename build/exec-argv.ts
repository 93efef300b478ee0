/**
 * V8 flags baked into the executables (NODE_OPTIONS overrides those it accepts; the benchmarks
 * run the bundle with the same flags, bench/http.ts BUNDLE_ARGV). A daemon on an edge box
 * should not grow its heap to a quarter of RAM under a burst: measured after 100k messages, RSS 360 MB without these and about
 * 155 MB with them, at the same throughput.
 *
 * --no-concurrent-recompilation: TurboFan optimises on the main thread instead of a background
 * one. Measured after 100k messages through the agent API to SSE (bundle on this runtime, four
 * runs each): 54-56 MB of anonymous memory instead of 85-87, with the same V8 heap (41 MB
 * committed) and glibc's arenas and mmap threshold ruled out (MALLOC_ARENA_MAX=1,
 * MALLOC_MMAP_THRESHOLD_ changed 0-7 MB); --no-maglev alone gave 60. The price is paid while
 * code warms up: the event loop's longest stall under that load was 42-51 ms instead of 27-40
 * (p99 the same, 18-21 ms); gateway.proxy, registry.get, http.discovery and wan.* showed no
 * difference beyond the machine's noise (two to three runs each). Node refuses this flag in
 * NODE_OPTIONS, so it cannot be turned back on in a unit.
 *
 * Not here, measured: --single-threaded-gc. It had cut the WAN path's GC pauses while a leaky
 * Redis consumer kept every reply (a 65 MB heap at the sending site); with that fixed, two bench runs
 * each gave a WAN p99 of 3.2–3.8 ms with it against 3.7–5.1 without (young pauses 1.15 against
 * 1.4–1.6 ms on average), within the machine's noise; it had cost 50 MB more RSS after 100k messages.
 * Node also refuses it in NODE_OPTIONS, so an operator could not add it to a unit.
 */
export const EXEC_ARGV = ["--max-old-space-size=256", "--max-semi-space-size=8", "--no-concurrent-recompilation"];
