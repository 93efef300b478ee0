/**
 * The WAN against raw JetStream, on one nats-server (file store) and the same payloads:
 * - wan.throughput: A's publish → B's handler on a durable channel (Redis on both sides), msg/s,
 *   against raw @nats-io/jetstream: publish with msgID, 256 in flight → durable pull consume →
 *   JSON.parse → ack. Target ratio ≥ 1.0. Interleaved rounds (BENCH_ROUNDS, 3): the best round
 *   of each side, with the median rounds' ratio.
 * - wan.latency: p50/p99 at a fixed 200 msg/s, same two paths, BENCH_LATENCY_S (20) seconds
 *   each in four interleaved slices. Target p99 ≤ raw + 5 ms.
 * - wan.recovery: time to deliver 50,000 messages queued while NATS was down, once it is back,
 *   against raw republishing them.
 * Sites A and B run as the executables' bundle on Node 24, in their own processes; this process
 * is their agents (it publishes on A's bus and handles on B's) and the raw client.
 * The throughput figures carry each process's CPU per message (`cpu_us_per_msg`). With
 * WAN_PROF=<dir> the sites write V8 CPU profiles there.
 */
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connectBus } from "../src/index.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { startNats, type TestNats } from "../test/helpers/nats.ts";
import { freePort, startRedis } from "../test/helpers/redis.ts";
import { BUNDLE_ARGV, requireBuild, runtimeNode, start, stop } from "./http.ts";
import { cpuMeter, CpuTotals, interleaved, payload, percentile, report, reportRounds, waitReady, windowed } from "./lib.ts";

const N = Number(process.env["BENCH_RECORDS"] ?? 20_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3);
const RECOVERY_N = Number(process.env["BENCH_RECOVERY"] ?? 50_000);
const RATE = 200;
const LATENCY_SECONDS = Number(process.env["BENCH_LATENCY_S"] ?? 20);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Raw JetStream: publish with msgID (256 in flight), durable pull consumer, JSON.parse, ack. */
export async function rawPath(natsUrls: string[], name: string, replicas = 1) {
  const nc = await connect({ servers: natsUrls.map((u) => u.replace("nats://", "")) });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: [`${name}.>`], storage: StorageType.File, duplicate_window: 120e9, num_replicas: replicas });
  await jsm.consumers.add(name, { durable_name: "raw", ack_policy: AckPolicy.Explicit, max_ack_pending: 10_000, num_replicas: replicas });
  const js = jetstream(nc);
  let onMessage: (m: { sentAt?: number; measured?: boolean }) => void = () => {};
  const consumer = await js.consumers.get(name, "raw");
  const messages = await consumer.consume({ max_messages: 512 });
  void (async () => {
    for await (const m of messages) {
      onMessage(JSON.parse(m.string()) as { sentAt?: number; measured?: boolean });
      m.ack();
    }
  })();
  let seq = 0;
  return {
    publish: (body: Record<string, unknown>) => js.publish(`${name}.x`, JSON.stringify(body), { msgID: `${name}-${++seq}` }),
    onMessage: (f: (m: { sentAt?: number; measured?: boolean }) => void) => (onMessage = f),
    close: async () => {
      messages.stop();
      await nc.close();
    },
  };
}

export interface Sites {
  /** Publishes on A's bus, as an agent at site A does: on a durable channel, and on a best-effort one. */
  publish: (body: Record<string, unknown>) => Promise<unknown>;
  publishLive: (body: Record<string, unknown>) => Promise<unknown>;
  received: () => number;
  onMessage: (f: (m: { sentAt?: number; measured?: boolean }) => void) => void;
  /** Messages waiting in A's WAN queue (its /readyz). */
  queued: () => Promise<number>;
  /** The processes of the path, for CPU accounting. */
  procs: Record<string, () => number | undefined>;
  close: () => Promise<void>;
}

/**
 * Sites A and B as the executables' bundle on Node 24, each with its Redis, in their own
 * processes; this process is their agents: it publishes on A's bus and handles on B's.
 */
export async function sites(nats: { urls: string[]; pid: () => number | undefined }, dir: string, wanExtra = ""): Promise<Sites> {
  requireBuild();
  const node = runtimeNode();
  const [ra, rb] = await Promise.all([startRedis({ aof: false }), startRedis({ aof: false })]);
  const [pa, pb] = [await freePort(), await freePort()];
  const ka = createKeyFile(join(dir, "a.key"));
  const kb = createKeyFile(join(dir, "b.key"));
  const secrets = { a: "bench-bus-secret-a-0123456789abcdef0123456789", b: "bench-bus-secret-b-0123456789abcdef0123456789" };
  const write = (n: "a" | "b", port: number, redis: string, peerPort: number, peerKey: string, accept: string, forward: string) => {
    const secret = join(dir, `${n}-bus.key`);
    writeFileSync(secret, secrets[n]);
    chmodSync(secret, 0o600);
    const f = join(dir, `${n}.toml`);
    writeFileSync(
      f,
      `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${join(dir, `${n}.key`)}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${join(dir, `${n}.sock`)}"\n[log]\nlevel = "warn"\n[bus]\nmax_age_seconds = 3600\n[bus.redis]\nurl = "${redis}"\nblock_ms = 1000\n[[bus.keys]]\nid = "${n}"\nsecret_file = "${secret}"\n[[bus.channels]]\nname = "a2b"\ndurable = true\n[[bus.channels]]\nname = "a2b-live"\n[[federation.peers]]\norigin = "http://127.0.0.1:${peerPort}"\ntransport = "wan"\npublic_keys = ["${peerKey}"]\naccept_channels = [${accept}]\nforward_channels = [${forward}]\n[wan]\nnats_urls = [${nats.urls.map((u) => `"${u}"`).join(", ")}]\nmanage_streams = true\n${wanExtra}\n${process.env["WAN_EXTRA"] ?? ""}`, // WAN_EXTRA: more [wan] keys, to compare settings
    );
    return f;
  };
  const fa = write("a", pa, ra.url, pb, kb.publicKeyHex, "", '"a2b", "a2b-live"');
  const fb = write("b", pb, rb.url, pa, ka.publicKeyHex, '"a2b", "a2b-live"', "");
  // The V8 flags the executables carry (heap bounds), so the sites run as they ship.
  const prof = [...(process.env["WAN_PROF"] ? ["--cpu-prof", "--cpu-prof-dir", process.env["WAN_PROF"]] : [])];
  const a = start(node, [...prof, ...BUNDLE_ARGV, "--config", fa, "--state-dir", join(dir, "a-state"), "serve"]);
  const b = start(node, [...prof, ...BUNDLE_ARGV, "--config", fb, "--state-dir", join(dir, "b-state"), "serve"]);
  const readyz = async (port: number) => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
    return r ? ((await r.json()) as { degraded?: boolean; checks?: { wan?: { queue: { messages: number } } } }) : null;
  };
  const end = Date.now() + 30_000;
  while (!((await readyz(pa))?.degraded === false && (await readyz(pb))?.degraded === false)) {
    if (Date.now() > end) throw new Error("the sites did not reach NATS");
    await sleep(50);
  }
  const busA = await connectBus({ redisUrl: ra.url, keys: [{ id: "a", secret: secrets.a }], channels: { a2b: { durable: true } }, producer: "bench", maxAgeSeconds: 3600 });
  const busB = await connectBus({ redisUrl: rb.url, keys: [{ id: "b", secret: secrets.b }], channels: { a2b: { durable: true } }, producer: "bench", consumerGroup: "bench", consumerName: "bench", maxAgeSeconds: 3600 });
  await waitReady(busA, busB);
  let n = 0;
  let onMessage: (m: { sentAt?: number; measured?: boolean }) => void = () => {};
  const handle = (d: { message: Record<string, unknown> }) => {
    n++;
    onMessage(d.message as { sentAt?: number; measured?: boolean });
  };
  await busB.subscribe("a2b", handle, { group: "bench" });
  await busB.subscribe("a2b-live", handle);
  return {
    publish: (body) => busA.publish("a2b", body),
    publishLive: (body) => busA.publish("a2b-live", body),
    received: () => n,
    onMessage: (f) => (onMessage = f),
    queued: async () => (await readyz(pa))?.checks?.wan?.queue.messages ?? -1,
    procs: { agents: () => process.pid, site_a: () => a.pid, site_b: () => b.pid, redis_a: () => ra.pid(), redis_b: () => rb.pid(), nats: () => nats.pid() },
    close: async () => {
      await Promise.all([busA.close(), busB.close()]);
      await Promise.all([stop(a), stop(b)]);
      await Promise.all([ra.stop(), rb.stop()]);
    },
  };
}

/** msg/s of `n` messages through `publish` until `received` has grown by `n`; CPU added to `cpu`. */
export async function timed(n: number, publish: (body: Record<string, unknown>) => Promise<unknown>, received: () => number, procs: Record<string, () => number | undefined>, cpu?: CpuTotals): Promise<number> {
  const from = received();
  const meter = cpuMeter(procs);
  const t0 = performance.now();
  await windowed(n, 256, (i) => publish(payload(i)));
  await until(() => received() >= from + n);
  const rate = n / ((performance.now() - t0) / 1000);
  cpu?.add(meter.stop(n), n);
  return rate;
}

async function until(cond: () => boolean, timeoutMs = 600_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await sleep(2);
  }
}

/**
 * Messages at a fixed rate; the latency of each, sorted. The first second is not counted: it
 * warms the path after whatever ran before (the same for both sides).
 */
async function paced(publish: (body: Record<string, unknown>) => Promise<unknown>, onMessage: (f: (m: { sentAt?: number; measured?: boolean }) => void) => void, seconds: number): Promise<number[]> {
  const lat: number[] = [];
  onMessage((m) => {
    if (m.measured && typeof m.sentAt === "number") lat.push(performance.now() - m.sentAt);
  });
  const warm = RATE;
  const measured = Math.round(RATE * seconds);
  const t0 = performance.now();
  for (let i = 0; i < warm + measured; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    void publish({ ...payload(i), sentAt: performance.now(), ...(i >= warm ? { measured: true } : {}) });
  }
  await until(() => lat.length >= measured, 60_000);
  return lat.sort((x, y) => x - y);
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-wan-"));
  const nats = await startNats();
  try {
    // Throughput: interleaved rounds (which side goes first alternates, so drift on a shared
    // machine hits both alike), after a short unmeasured run of each to warm the JIT.
    const raw = await rawPath([nats.url], "RAW_T");
    let rawGot = 0;
    raw.onMessage(() => void rawGot++);
    const s = await sites({ urls: [nats.url], pid: () => nats.pid() }, dir);
    const rawProcs = { client: () => process.pid, nats: () => nats.pid() };
    const cores = availableParallelism();
    await timed(2_000, (b) => raw.publish(b), () => rawGot, rawProcs);
    await timed(2_000, s.publish, s.received, s.procs);
    await timed(2_000, s.publishLive, s.received, s.procs);
    const rawCpu = new CpuTotals();
    const durableCpu = new CpuTotals();
    const liveCpu = new CpuTotals();
    const rawRun = () => timed(N, (b) => raw.publish(b), () => rawGot, rawProcs, rawCpu);
    // CPU per message of each process on the path (user + system): on a machine with fewer
    // cores than the path has processes, their sum, not one process, sets the rate.
    const durable = await interleaved(ROUNDS, rawRun, () => timed(N, s.publish, s.received, s.procs, durableCpu));
    reportRounds("wan.throughput", "msg/s", durable, { baseline_is: "raw JetStream: publish with msgID (256 in flight), durable pull consume, JSON.parse, ack", channel: "durable on both sides (Redis Streams)", messages_per_round: N, rounds: ROUNDS, wan_settings: process.env["WAN_EXTRA"]?.trim() || "defaults", target_ratio: 1.0, cores, baseline_cpu_us_per_msg: rawCpu.perMessage(), cpu_us_per_msg: durableCpu.perMessage() });
    const live = await interleaved(ROUNDS, rawRun, () => timed(N, s.publishLive, s.received, s.procs, liveCpu));
    reportRounds("wan.throughput.best_effort", "msg/s", live, { baseline_is: "raw JetStream, as above", channel: "best-effort on both sides (Redis pub/sub); the WAN hop is the same", messages_per_round: N, rounds: ROUNDS, cores, cpu_us_per_msg: liveCpu.perMessage() });

    // Latency at 200 msg/s, in interleaved slices (the order rotates each slice), so a noisy
    // spell on the machine lands on every side alike; each side's samples are pooled.
    const series = [
      { lat: [] as number[], run: (secs: number) => paced((b) => raw.publish(b), (f) => raw.onMessage(f), secs) },
      { lat: [] as number[], run: (secs: number) => paced((b) => s.publish(b), (f) => s.onMessage(f), secs) },
      { lat: [] as number[], run: (secs: number) => paced((b) => s.publishLive(b), (f) => s.onMessage(f), secs) },
    ];
    const slices = 4;
    for (let k = 0; k < slices; k++) {
      for (let j = 0; j < series.length; j++) {
        const x = series[(k + j) % series.length]!;
        x.lat.push(...(await x.run(LATENCY_SECONDS / slices)));
      }
    }
    const [rawLat, wanLat, liveLat] = series.map((x) => x.lat.sort((a, b) => a - b)) as [number[], number[], number[]];
    for (const p of [50, 99]) report(`wan.latency.p${p}`, "ms", percentile(rawLat, p), percentile(wanLat, p), { baseline_is: "raw JetStream at the same rate, in slices interleaved with ours", slices, channel: "durable", rate_per_s: RATE, messages: wanLat.length, target: p === 99 ? "≤ raw + 5 ms" : undefined });
    for (const p of [50, 99]) report(`wan.latency.best_effort.p${p}`, "ms", percentile(rawLat, p), percentile(liveLat, p), { baseline_is: "the same raw JetStream run", channel: "best-effort", rate_per_s: RATE, messages: liveLat.length });
    await raw.close();

    // Recovery: RECOVERY_N queued while NATS is down, delivered once it is back.
    await nats.kill();
    const before = s.received();
    await windowed(RECOVERY_N, 256, (i) => s.publish(payload(i)));
    const end = Date.now() + 300_000;
    while ((await s.queued()) < RECOVERY_N) {
      if (Date.now() > end) throw new Error("not all queued");
      await sleep(50);
    }
    await nats.start();
    let t0 = performance.now();
    await until(() => s.received() >= before + RECOVERY_N);
    const wanRecovery = (performance.now() - t0) / 1000;
    await s.close();
    const raw2 = await rawPath([nats.url], "RAW_R");
    let got2 = 0;
    raw2.onMessage(() => void got2++);
    t0 = performance.now();
    await windowed(RECOVERY_N, 256, (i) => raw2.publish(payload(i)));
    await until(() => got2 >= RECOVERY_N);
    const rawRecovery = (performance.now() - t0) / 1000;
    await raw2.close();
    report("wan.recovery", "s", rawRecovery, wanRecovery, { baseline_is: "raw JetStream republishing the same messages (256 in flight) to a consumer", messages: RECOVERY_N, lower_is_better: true });
  } finally {
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
