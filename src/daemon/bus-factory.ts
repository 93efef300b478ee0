/** Building a MeshBus from the effective configuration. */
import { join } from "node:path";
import type { Config, Secrets } from "../config/index.ts";
// The daemon composes the bus from the configuration: the bus itself knows nothing of the config file.
import type { Logger } from "../log/index.ts";
import type { BusMetrics } from "../metrics/index.ts";
import type { BusBackend } from "../bus/backends/backend.ts";
import type { RedisClient, RedisTarget } from "../redis/index.ts";
import { EmbeddedBackend } from "../bus/backends/embedded.ts";
import { MeshBus, type ChannelOptions } from "../bus/bus.ts";
import type { VerifyPolicy } from "../bus/envelope/verify.ts";

export function policyOf(c: Config): VerifyPolicy {
  return {
    maxBytes: c.bus.max_message_bytes,
    maxAgeMs: c.bus.max_age_seconds * 1000,
    skewMs: c.bus.clock_skew_seconds * 1000,
    acceptV1Unextended: c.bus.accept_v1_unextended,
  };
}

export function channelsOf(c: Config): Map<string, ChannelOptions> {
  const m = new Map<string, ChannelOptions>();
  for (const ch of c.bus.channels) {
    const o: ChannelOptions = { durable: ch.durable };
    if (ch.max_age_seconds !== undefined) o.maxAgeMs = ch.max_age_seconds * 1000;
    m.set(ch.name, o);
  }
  return m;
}

/** The redis URL with the password from its file, never from the config text. */
function redisUrlOf(c: Config, s: Pick<Secrets, "redisPassword">): string {
  if (!s.redisPassword || !c.bus.redis.url) return c.bus.redis.url;
  const u = new URL(c.bus.redis.url);
  u.password = encodeURIComponent(s.redisPassword);
  return u.toString();
}

/** "HOST:PORT" (a bracketed IPv6 address included) as ioredis takes it. */
function hostPort(hp: string): { host: string; port: number } {
  const at = hp.lastIndexOf(":");
  return { host: hp.slice(0, at).replace(/^\[(.*)\]$/, "$1"), port: Number(hp.slice(at + 1)) };
}

/** One server by URL, the Cluster, or the Sentinels' master (passwords from their files). */
export function redisTargetOf(c: Config, s: Pick<Secrets, "redisPassword" | "sentinelPassword" | "redisTls">): RedisTarget {
  const r = c.bus.redis;
  if (r.cluster_nodes.length > 0) {
    return { url: "", cluster: { nodes: r.cluster_nodes.map(hostPort), ...(s.redisPassword ? { password: s.redisPassword } : {}) } };
  }
  if (r.sentinels.length === 0) return s.redisTls ? { url: redisUrlOf(c, s), tls: s.redisTls } : { url: redisUrlOf(c, s) };
  const hosts = r.sentinels.map(hostPort);
  const sentinel: NonNullable<RedisTarget["sentinel"]> = { hosts, master: r.sentinel_master, db: r.db };
  if (s.redisPassword) sentinel.password = s.redisPassword;
  if (s.sentinelPassword) sentinel.sentinelPassword = s.sentinelPassword;
  return { url: "", sentinel };
}

/** ioredis is loaded only when Redis is configured: it is a fifth of the idle heap. */
/**
 * A connection to the bus's Redis for a role's shared state (token memory, rate limits):
 * commands fail fast while it is down (no offline queue), and errors are logged, rate-limited.
 */
export async function sideRedis(c: Config, s: Secrets, log: Logger, role: string): Promise<RedisClient> {
  const { redisClient } = await import("../redis/index.ts");
  const r = redisClient(redisTargetOf(c, s), { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  r.on("error", (err: Error) => log.limited(`redis-${role}`, "warn", "redis connection error", { role, error: err.message }));
  r.connect().catch(() => {});
  return r;
}

export async function createBackend(c: Config, s: Secrets, log: Logger): Promise<BusBackend> {
  if (c.bus.backend === "embedded") return new EmbeddedBackend(c.bus.redis.stream_max_len, log);
  const { RedisBackend } = await import("../bus/backends/redis/index.ts");
  return new RedisBackend({
    ...redisTargetOf(c, s),
    streamPrefix: c.bus.redis.stream_prefix,
    streamMaxLen: c.bus.redis.stream_max_len,
    blockMs: c.bus.redis.block_ms,
    connectTimeoutMs: c.bus.redis.connect_timeout_ms,
    waitReplicas: c.bus.redis.wait_replicas,
    waitTimeoutMs: c.bus.redis.wait_timeout_ms,
    log,
  });
}

/**
 * `persistent: false` (a CLI run beside a live appliance) keeps off the appliance's spool and
 * replay memory files.
 */
export async function createBus(c: Config, s: Secrets, log: Logger, metrics?: BusMetrics, persistent = true): Promise<MeshBus> {
  const opts: ConstructorParameters<typeof MeshBus>[0] = {
    backend: await createBackend(c, s, log),
    ring: s.ring,
    policy: policyOf(c),
    channels: channelsOf(c),
    producer: c.bus.producer,
    consumerGroup: c.bus.redis.consumer_group,
    consumerName: c.bus.redis.consumer_name,
    claimIdleMs: c.bus.redis.claim_idle_seconds * 1000,
    maxAttempts: c.bus.redis.max_attempts,
    replayCacheSize: c.bus.replay_cache_size,
    spoolMaxBytes: c.bus.spool.max_bytes,
    log,
  };
  if (persistent) {
    opts.replayFile = join(c.node.state_dir, "replay.journal");
    opts.legacyReplayFile = join(c.node.state_dir, "replay.json");
  }
  // The embedded bus has nothing to wait for; only a remote backend needs a spool.
  if (persistent && c.bus.backend === "redis") opts.spoolDir = join(c.node.state_dir, "spool");
  if (metrics) opts.metrics = metrics;
  return new MeshBus(opts);
}
