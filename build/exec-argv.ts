/**
 * V8 flags baked into the executables (NODE_OPTIONS overrides them; the benchmarks run the
 * bundle with the same flags). A daemon on an edge box should not grow its heap to a quarter
 * of RAM under a burst: measured after 100k messages, RSS 360 MB without these and about
 * 155 MB with them, at the same throughput.
 *
 * Not here, measured: --single-threaded-gc. It had cut the WAN path's GC pauses while a leaky
 * Redis consumer kept every reply (a 65 MB heap at the sending site); with that fixed, two bench runs
 * each gave a WAN p99 of 3.2–3.8 ms with it against 3.7–5.1 without (young pauses 1.15 against
 * 1.4–1.6 ms on average), within the machine's noise; it had cost 50 MB more RSS after 100k messages.
 * Node also refuses it in NODE_OPTIONS, so an operator could not add it to a unit.
 */
export const EXEC_ARGV = ["--max-old-space-size=256", "--max-semi-space-size=8"];
