/**
 * wan.cluster.throughput: the WAN on a three-node JetStream cluster with stream_replicas = 3
 * (sites A and B listing every node), against raw JetStream on the same cluster with the same
 * replication (publish with msgID, 256 in flight, durable pull consume, JSON.parse, ack), in
 * interleaved rounds. Target ratio ≥ 1.0, as on one server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsCluster } from "../test/helpers/nats.ts";
import { CpuTotals, interleaved, reportRounds } from "./lib.ts";
import { rawPath, sites, timed } from "./wan.ts";

const N = Number(process.env["BENCH_RECORDS"] ?? 20_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3);

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-wanc-"));
  const cluster = await startNatsCluster(3);
  try {
    const raw = await rawPath(cluster.urls, "RAW_C", 3);
    let rawGot = 0;
    raw.onMessage(() => void rawGot++);
    const s = await sites({ urls: cluster.urls, pid: () => cluster.nodes[0]!.pid() }, dir, "stream_replicas = 3");
    const nodes = Object.fromEntries(cluster.nodes.map((n) => [n.serverName, () => n.pid()]));
    const rawProcs = { client: () => process.pid, ...nodes };
    await timed(2_000, (b) => raw.publish(b), () => rawGot, rawProcs);
    await timed(2_000, s.publish, s.received, { ...s.procs, ...nodes });
    const rawCpu = new CpuTotals();
    const ourCpu = new CpuTotals();
    const r = await interleaved(
      ROUNDS,
      () => timed(N, (b) => raw.publish(b), () => rawGot, rawProcs, rawCpu),
      () => timed(N, s.publish, s.received, { ...s.procs, ...nodes }, ourCpu),
    );
    reportRounds("wan.cluster.throughput", "msg/s", r, {
      baseline_is: "raw JetStream on the same three-node cluster, R3 stream and consumer: publish with msgID (256 in flight), durable pull consume, JSON.parse, ack",
      channel: "durable on both sides (Redis Streams)",
      stream_replicas: 3,
      messages_per_round: N,
      rounds: ROUNDS,
      target_ratio: 1.0,
      cores: availableParallelism(),
      baseline_cpu_us_per_msg: rawCpu.perMessage(),
      cpu_us_per_msg: ourCpu.perMessage(),
    });
    await raw.close();
    await s.close();
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
