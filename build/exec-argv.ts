/**
 * V8 flags baked into the executables (NODE_OPTIONS overrides them; the benchmarks run the
 * bundle with the same flags). A daemon on an edge box should not grow its heap to a quarter
 * of RAM under a burst: measured after 100k messages, RSS 360 MB without these and about
 * 155 MB with them, at the same throughput.
 *
 * Not here, measured: --single-threaded-gc. On 2 cores shared with Redis and NATS it cut the
 * WAN path's young-GC pauses (site B 1.8–2.6 → 1.3–1.4 ms mean, site A's worst 31 → 13 ms)
 * and its p99 in a probe (13–18 → 6 ms) at the same CPU, but RSS after 100k messages went
 * from 159 to 211 MB. The operator guide ("Memory") offers it as a choice.
 */
export const EXEC_ARGV = ["--max-old-space-size=256", "--max-semi-space-size=8"];
