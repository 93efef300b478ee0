/**
 * pilox-mesh as a library for TypeScript agents:
 *
 *   import { connectBus } from "pilox-mesh";
 *   const bus = await connectBus({ redisUrl: "redis://10.0.0.5:6379", keys: [{ id: "k1", secretFile: "/etc/pilox-mesh/bus-k1.key" }] });
 *   await bus.subscribe("jobs", async (d) => console.log(d.message));
 *   await bus.publish("jobs", { task: "index" });
 */
import { hostname } from "node:os";
import { EmbeddedBackend } from "./bus/backends/embedded.ts";
import { RedisBackend } from "./bus/backends/redis/index.ts";
import type { RedisTarget } from "./redis/index.ts";
import { MeshBus, type ChannelOptions } from "./bus/bus.ts";
import { KeyRing, type BusKey } from "./bus/keyring.ts";
import * as v from "valibot";
import { ConfigSchema } from "./config/schema.ts";
import { readSecretFile } from "./secrets/index.ts";
import { silentLogger, type Logger } from "./log/index.ts";

export * from "./bus/index.ts";
export { RedisBackend, type RedisBackendOptions } from "./bus/backends/redis/index.ts";
export type { RedisTarget } from "./redis/index.ts";
export { createLogger, silentLogger, type Logger } from "./log/index.ts";
export { loadConfig, resolveSecrets, ConfigError, type Config } from "./config/index.ts";
export { Appliance, type ApplianceOptions } from "./daemon/appliance.ts";
export { VERSION } from "./version.ts";

export interface ConnectOptions {
  /** Redis URL; without one (or redisSentinel) the bus is in-process (embedded). */
  redisUrl?: string;
  /** Redis through Sentinel instead of a URL: the Sentinels and the master name they monitor. */
  redisSentinel?: NonNullable<RedisTarget["sentinel"]>;
  /** Redis Cluster instead of a URL: some of its nodes. */
  redisCluster?: NonNullable<RedisTarget["cluster"]>;
  /** Bus keys: a secret (≥ 32 bytes) or a file holding it (mode 0600). */
  keys: ({ id: string; primary?: boolean } & ({ secret: string | Buffer } | { secretFile: string }))[];
  /** Channels with options; unlisted channels are best-effort pub/sub. */
  channels?: Record<string, ChannelOptions>;
  maxAgeSeconds?: number;
  clockSkewSeconds?: number;
  acceptV1Unextended?: boolean;
  maxMessageBytes?: number;
  producer?: string;
  consumerGroup?: string;
  consumerName?: string;
  /** Directory for the durable spool (publishes while Redis is away wait there). */
  spoolDir?: string;
  spoolMaxBytes?: number;
  log?: Logger;
}

/** The configuration file's defaults, so the library and the appliance cannot drift apart. */
const DEFAULTS = v.parse(ConfigSchema, {}).bus;

/** A started bus with the same defaults as the appliance's configuration. */
export async function connectBus(o: ConnectOptions): Promise<MeshBus> {
  const keys: BusKey[] = o.keys.map((k) => ({
    id: k.id,
    secret: "secretFile" in k ? readSecretFile(k.secretFile) : Buffer.from(k.secret),
  }));
  const log = o.log ?? silentLogger;
  const name = hostname().replace(/[^A-Za-z0-9._\-]/g, "-") || "pilox-mesh";
  const r = DEFAULTS.redis;
  const bus = new MeshBus({
    backend: o.redisUrl || o.redisSentinel || o.redisCluster
      ? new RedisBackend({ url: o.redisUrl ?? "", ...(o.redisSentinel ? { sentinel: o.redisSentinel } : {}), ...(o.redisCluster ? { cluster: o.redisCluster } : {}), streamPrefix: r.stream_prefix, streamMaxLen: r.stream_max_len, blockMs: r.block_ms, connectTimeoutMs: r.connect_timeout_ms, waitReplicas: r.wait_replicas, waitTimeoutMs: r.wait_timeout_ms, log })
      : new EmbeddedBackend(),
    ring: new KeyRing(keys, o.keys.find((k) => k.primary)?.id),
    policy: {
      maxBytes: o.maxMessageBytes ?? DEFAULTS.max_message_bytes,
      maxAgeMs: (o.maxAgeSeconds ?? DEFAULTS.max_age_seconds) * 1000,
      skewMs: (o.clockSkewSeconds ?? DEFAULTS.clock_skew_seconds) * 1000,
      acceptV1Unextended: o.acceptV1Unextended ?? DEFAULTS.accept_v1_unextended,
    },
    channels: new Map(Object.entries(o.channels ?? {})),
    producer: o.producer ?? DEFAULTS.producer,
    consumerGroup: o.consumerGroup ?? name,
    consumerName: o.consumerName ?? name,
    claimIdleMs: r.claim_idle_seconds * 1000,
    maxAttempts: r.max_attempts,
    replayCacheSize: DEFAULTS.replay_cache_size,
    spoolMaxBytes: o.spoolMaxBytes ?? DEFAULTS.spool.max_bytes,
    ...(o.spoolDir ? { spoolDir: o.spoolDir } : {}),
    log,
  });
  await bus.start();
  return bus;
}
