/**
 * V8 flags baked into the executables (NODE_OPTIONS overrides them; the benchmarks run the
 * bundle with the same flags).
 * - Heap bounds: a daemon on an edge box should not grow its heap to a quarter of RAM under a
 *   burst. Measured after 100k messages: RSS 360 MB without them, about 155 MB with them, at
 *   the same throughput.
 * - --single-threaded-gc: on the small machines this runs on, GC helper threads compete with
 *   the daemon, Redis and NATS for a core or two, and a young-generation pause waits for
 *   helpers that are not scheduled. Measured on the WAN path at 200 msg/s (2 cores, both sites,
 *   both Redis servers and nats-server on the machine): site B's scavenges 1.8–2.6 → 1.3–1.4 ms
 *   mean, site A's worst 31 → 13 ms, end-to-end p99 13–18 → 5.8–6.1 ms; CPU per message the
 *   same (151 and 167 µs either way in two paired runs).
 */
export const EXEC_ARGV = ["--max-old-space-size=256", "--max-semi-space-size=8", "--single-threaded-gc"];
