/** Builds MeshBus instances for tests straight from options (the appliance uses the config). */
import { KeyRing, MeshBus, EmbeddedBackend, REJECT_REASONS, type BusKey, type ChannelOptions, type Delivery } from "../../src/bus/index.ts";
import { RedisBackend } from "../../src/bus/backends/redis/index.ts";
import type { RedisTarget } from "../../src/redis/index.ts";
import { createLogger, silentLogger, type Logger } from "../../src/log/index.ts";
import { Redis } from "ioredis";
import { startRedis, type TestRedis } from "./redis.ts";
import { createMetrics, type Metrics } from "../../src/metrics/index.ts";

export interface TestBusOptions {
  url?: string;
  /** Redis through Sentinel instead of `url`. */
  sentinel?: RedisTarget["sentinel"];
  keys: BusKey[];
  primary?: string;
  channels?: Record<string, ChannelOptions>;
  spoolDir?: string;
  replayFile?: string;
  spoolMaxBytes?: number;
  group?: string;
  consumer?: string;
  maxAgeMs?: number;
  acceptV1Unextended?: boolean;
  claimIdleMs?: number;
  maxAttempts?: number;
  blockMs?: number;
  log?: Logger;
  /** A backend shared with other buses (an embedded one: several buses in one process). */
  backend?: EmbeddedBackend;
}

export function makeBus(o: TestBusOptions): { bus: MeshBus; metrics: Metrics } {
  const metrics = createMetrics({ busRejected: REJECT_REASONS });
  const log = o.log ?? (process.env["PILOX_TEST_LOG"] ? createLogger({ level: "debug", format: "text" }) : silentLogger);
  const backend = o.backend ?? (o.url || o.sentinel
    ? new RedisBackend({ url: o.url ?? "", ...(o.sentinel ? { sentinel: o.sentinel } : {}), streamPrefix: "pilox-mesh:stream:", streamMaxLen: 1_000_000, blockMs: o.blockMs ?? 1_000, connectTimeoutMs: 2_000, log })
    : new EmbeddedBackend());
  const opts: ConstructorParameters<typeof MeshBus>[0] = {
    backend,
    ring: new KeyRing(o.keys, o.primary),
    policy: { maxBytes: 256 * 1024, maxAgeMs: o.maxAgeMs ?? 300_000, skewMs: 30_000, acceptV1Unextended: o.acceptV1Unextended ?? true },
    channels: new Map(Object.entries(o.channels ?? {})),
    producer: "test",
    consumerGroup: o.group ?? "g1",
    consumerName: o.consumer ?? "c1",
    claimIdleMs: o.claimIdleMs ?? 5_000,
    maxAttempts: o.maxAttempts ?? 5,
    replayCacheSize: 100_000,
    spoolMaxBytes: o.spoolMaxBytes ?? 64 * 1024 * 1024,
    metrics: metrics.bus,
    log,
  };
  if (o.spoolDir) opts.spoolDir = o.spoolDir;
  if (o.replayFile) opts.replayFile = o.replayFile;
  return { bus: new MeshBus(opts), metrics };
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function untilReady(bus: MeshBus): Promise<void> {
  await waitFor(() => bus.backend.isReady(), 10_000, "bus ready");
}

export function collector() {
  const got: Delivery[] = [];
  return { got, handler: (d: Delivery) => void got.push(d) };
}

export async function counterValue(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = metric?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
}

/** A metric's values summed over every label set that `filter` keeps. */
export async function counterSum(m: Metrics, name: string, filter: (labels: Partial<Record<string, string | number>>) => boolean = () => true): Promise<number> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (metric?.values ?? []).filter((v) => filter(v.labels)).reduce((n, v) => n + Number(v.value), 0);
}

/** Starts the buses and waits until each backend is connected. */
export async function startReady(...buses: MeshBus[]): Promise<void> {
  await Promise.all(buses.map((b) => b.start()));
  await Promise.all(buses.map(untilReady));
}

/** A Redis for a suite, and a raw client on it to play the outsider who can reach it. */
export async function redisWithClient(): Promise<{ redis: TestRedis; raw: Redis }> {
  const redis = await startRedis();
  return { redis, raw: new Redis(redis.url) };
}

/** The end of such a suite: its buses closed, the raw client gone, Redis stopped. */
export async function closeRedisSuite(buses: readonly MeshBus[], raw: Redis, redis: TestRedis): Promise<void> {
  await Promise.all(buses.map((b) => b.close()));
  raw.disconnect();
  await redis.stop();
}
