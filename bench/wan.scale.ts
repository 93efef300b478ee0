/**
 * wan.scale: the capacity simulation behind docs/scaling.md. 10, 25 and 50 sites (SCALE_SITES)
 * on one three-node JetStream cluster (stream_replicas = SCALE_REPLICAS, 3), each an appliance
 * with the embedded bus, ten to a process (bench/scale-worker.ts), each forwarding the durable
 * channel "mesh" to the next three sites of a ring and accepting it from the three before.
 * Every site publishes SCALE_RATE msg/s (5) for SCALE_SECONDS (20); each message is delivered at
 * three sites. Per size: JetStream consumers and subjects, the sites' CPU and memory per site,
 * the NATS nodes' CPU and memory, frames and deliveries per second, and delivery latency. Each
 * figure's baseline is the same figure at the smallest size of the run (ratio: its growth).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createKeyFile } from "../src/identity/index.ts";
import { startNatsCluster } from "../test/helpers/nats.ts";
import { freePort } from "../test/helpers/redis.ts";
import { rssKiB, runtimeNode } from "./http.ts";
import { cpuMeter, percentile, report } from "./lib.ts";

const SIZES = (process.env["SCALE_SITES"] ?? "10,25,50").split(",").map(Number);
const REPLICAS = Number(process.env["SCALE_REPLICAS"] ?? 3);
const RATE = Number(process.env["SCALE_RATE"] ?? 5);
const SECONDS = Number(process.env["SCALE_SECONDS"] ?? 20);
const PER_PROCESS = Number(process.env["SCALE_PER_PROCESS"] ?? 10);
const FANOUT = 3;

interface Worker {
  proc: ChildProcess;
  ask: (cmd: Record<string, unknown>) => Promise<Record<string, unknown>>;
}

function worker(configs: { config: string; state: string; own: string; from: string[] }[]): Worker {
  const proc = spawn(runtimeNode(), ["--import", "tsx", "bench/scale-worker.ts", JSON.stringify(configs)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return {
    proc,
    ask: async (cmd) => {
      proc.stdin!.write(JSON.stringify(cmd) + "\n");
      const { value, done } = await lines.next();
      if (done) throw new Error("a scale worker exited");
      return JSON.parse(value as string) as Record<string, unknown>;
    },
  };
}

interface Figures {
  consumers: number;
  subjects: number;
  cpuMsPerSiteSecond: number;
  rssMiBPerSite: number;
  natsCpuMsPerSecond: number;
  natsRssMiB: number;
  deliveriesPerSecond: number;
  framesPerSecond: number;
  deliveredShare: number;
  p50: number;
  p99: number;
}

async function simulate(sites: number): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), `pilox-scale-${sites}-`));
  const cluster = await startNatsCluster(3);
  const workers: Worker[] = [];
  try {
    const ports = await Promise.all(Array.from({ length: sites }, () => freePort()));
    const origin = (i: number) => `http://127.0.0.1:${ports[(i + sites) % sites]}`;
    const keys = ports.map((_, i) => createKeyFile(join(dir, `s${i}.key`)));
    const configs = ports.map((port, i) => {
      const peers: string[] = [];
      // Site i publishes on its own channel "from-i", forwarded to the next three; it accepts
      // the channels of the three before (and forwards none of them on: no second hop).
      const ch = (j: number) => `from-${(j + sites) % sites}`;
      for (let k = 1; k <= FANOUT; k++) {
        peers.push(`[[federation.peers]]\norigin = "${origin(i + k)}"\ntransport = "wan"\npublic_keys = ["${keys[(i + k) % sites]!.publicKeyHex}"]\nforward_channels = ["${ch(i)}"]\naccept_channels = []\n`);
        peers.push(`[[federation.peers]]\norigin = "${origin(i - k)}"\ntransport = "wan"\npublic_keys = ["${keys[(i - k + sites) % sites]!.publicKeyHex}"]\nforward_channels = []\naccept_channels = ["${ch(i - k)}"]\n`);
      }
      const channels = [i, i - 1, i - 2, i - 3].map((j) => `[[bus.channels]]\nname = "${ch(j)}"\ndurable = true\n`).join("");
      const state = join(dir, `s${i}-state`);
      mkdirSync(state, { recursive: true });
      const config = join(dir, `s${i}.toml`);
      writeFileSync(
        config,
        `[instance]\norigin = "${origin(i)}"\nkey_file = "${join(dir, `s${i}.key`)}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${join(dir, `s${i}.sock`)}"\n[log]\nlevel = "error"\n${channels}` +
          `[wan]\nnats_urls = [${cluster.urls.map((u) => `"${u}"`).join(", ")}]\nmanage_streams = true\nstream_replicas = ${REPLICAS}\n` +
          peers.join(""),
      );
      return { config, state, own: ch(i), from: [1, 2, 3].map((k) => ch(i - k)) };
    });
    for (let p = 0; p < sites; p += PER_PROCESS) workers.push(worker(configs.slice(p, p + PER_PROCESS)));
    await Promise.all(workers.map((w) => w.ask({ cmd: "ready" })));
    const nc = await connect({ servers: cluster.urls });
    const jsm = await jetstreamManager(nc);
    const frameSeq0 = (await jsm.streams.info("PILOX_MESH_WAN_V1")).state.last_seq;
    const procs: Record<string, () => number | undefined> = Object.fromEntries(workers.map((w, i) => [`w${i}`, () => w.proc.pid]));
    const natsProcs: Record<string, () => number | undefined> = Object.fromEntries(cluster.nodes.map((n) => [n.serverName, () => n.pid()]));
    const meter = cpuMeter(procs);
    const natsMeter = cpuMeter(natsProcs);
    const t0 = Date.now();
    const sent = (await Promise.all(workers.map((w) => w.ask({ cmd: "send", rate: RATE, seconds: SECONDS })))).reduce((n, r) => n + Number(r["sent"]), 0);
    const expected = sent * FANOUT;
    let received = 0;
    const lat: number[] = [];
    const end = Date.now() + 120_000;
    while (received < expected && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 500));
      for (const w of workers) {
        const st = await w.ask({ cmd: "stats" });
        lat.push(...(st["latencies"] as number[]));
        if (process.env["SCALE_DEBUG"]) process.stderr.write(`worker received ${String(st["received"])}, total ${lat.length} of ${expected}\n`);
      }
      received = lat.length;
    }
    if (process.env["SCALE_DEBUG"]) for (const w of workers) process.stderr.write(`STATUS ${JSON.stringify(await w.ask({ cmd: "status" }))}\n`);
    const elapsed = (Date.now() - t0) / 1000;
    // µs per "message" with messages = 1: CPU µs over the phase.
    const cpu = meter.stop(1)["total"]!;
    const natsCpu = natsMeter.stop(1)["total"]!;
    const frames = (await jsm.streams.info("PILOX_MESH_WAN_V1")).state.last_seq - frameSeq0;
    const info = await jsm.streams.info("PILOX_MESH_WAN_V1", { subjects_filter: ">" });
    const consumers = (await jsm.consumers.list("PILOX_MESH_WAN_V1").next()).length;
    await nc.close();
    const rss = workers.reduce((n, w) => n + rssKiB(w.proc.pid!), 0) / 1024;
    const natsRss = cluster.nodes.reduce((n, x) => n + rssKiB(x.pid()!), 0) / 1024;
    lat.sort((a, b) => a - b);
    return {
      consumers,
      subjects: info.state.num_subjects ?? Object.keys(info.state.subjects ?? {}).length,
      cpuMsPerSiteSecond: cpu / 1000 / elapsed / sites,
      rssMiBPerSite: rss / sites,
      natsCpuMsPerSecond: natsCpu / 1000 / elapsed,
      natsRssMiB: natsRss,
      deliveriesPerSecond: received / elapsed,
      framesPerSecond: frames / elapsed,
      deliveredShare: received / expected,
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
    };
  } finally {
    await Promise.all(workers.map((w) => w.ask({ cmd: "stop" }).catch(() => w.proc.kill("SIGKILL"))));
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  let base: Figures | undefined;
  for (const sites of SIZES) {
    const f = await simulate(sites);
    base ??= f;
    const common = { sites, peers_per_site: FANOUT * 2, rate_per_site: RATE, seconds: SECONDS, stream_replicas: REPLICAS, sites_per_process: PER_PROCESS, baseline_is: `the same figure at ${SIZES[0]} sites` };
    report(`wan.scale.${sites}.consumers`, "consumers", base.consumers, f.consumers, common);
    report(`wan.scale.${sites}.subjects`, "subjects", base.subjects, f.subjects, common);
    report(`wan.scale.${sites}.site_cpu`, "ms CPU per site-second", base.cpuMsPerSiteSecond, f.cpuMsPerSiteSecond, common);
    report(`wan.scale.${sites}.site_rss`, "MiB per site", base.rssMiBPerSite, f.rssMiBPerSite, common);
    report(`wan.scale.${sites}.nats_cpu`, "ms CPU per second (3 nodes)", base.natsCpuMsPerSecond, f.natsCpuMsPerSecond, common);
    report(`wan.scale.${sites}.nats_rss`, "MiB (3 nodes)", base.natsRssMiB, f.natsRssMiB, common);
    report(`wan.scale.${sites}.deliveries`, "deliveries/s", base.deliveriesPerSecond, f.deliveriesPerSecond, { ...common, delivered_share: Math.round(f.deliveredShare * 1000) / 1000 });
    report(`wan.scale.${sites}.frames`, "frames/s", base.framesPerSecond, f.framesPerSecond, common);
    report(`wan.scale.${sites}.latency_p50`, "ms", base.p50, f.p50, common);
    report(`wan.scale.${sites}.latency_p99`, "ms", base.p99, f.p99, common);
  }
}
