/**
 * The Redis connection layer, shared by every role that keeps state in Redis (the bus, the
 * gateway's buckets, federation's replay memory): one server by URL, a master through
 * Sentinel, or a Cluster, and how to let go of a connection.
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";

/** A connection to one server (directly or through Sentinel) or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: one server by URL, the master that a set of Sentinels names, or a Cluster. */
export interface RedisTarget {
  /** `redis://` or `rediss://` URL (password included); "" with `sentinel`. */
  url: string;
  /** For rediss://: the CA to trust instead of the system's, and a client certificate. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  sentinel?: {
    hosts: { host: string; port: number }[];
    /** The master group name the Sentinels monitor. */
    master: string;
    /** Password of the Sentinels themselves. */
    sentinelPassword?: string;
    /** Password of the Redis servers. */
    password?: string;
    db: number;
  };
  /** Redis Cluster: some of its nodes (the rest are discovered), and the servers' password. */
  cluster?: {
    nodes: { host: string; port: number }[];
    password?: string;
  };
}

/**
 * A client for `t`. Through Sentinel, ioredis asks the Sentinels for the current master on
 * every (re)connect, so a failover is followed by reconnecting. A server that answers READONLY
 * (a master demoted while we were connected) makes the client reconnect and find the new one.
 */
export function redisClient(t: RedisTarget, opts: RedisOptions): RedisClient {
  const common: RedisOptions = { reconnectOnError: (err) => (err.message.startsWith("READONLY") ? 1 : false), ...opts };
  if (t.cluster) {
    // Cluster-level options are the cluster client's own; the rest apply to each node's connection.
    const { lazyConnect, enableOfflineQueue, retryStrategy, ...node } = common;
    return new Cluster(t.cluster.nodes, {
      lazyConnect: lazyConnect ?? false,
      enableOfflineQueue: enableOfflineQueue ?? true,
      ...(retryStrategy ? { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null } : {}),
      // Commands go to several nodes: ioredis pipelines per node.
      enableAutoPipelining: true,
      redisOptions: { ...node, ...(t.cluster.password ? { password: t.cluster.password } : {}) },
    });
  }
  if (!t.sentinel) return new Redis(t.url, t.tls ? { ...common, tls: { ...t.tls } } : common);
  const sn = t.sentinel;
  return new Redis({
    ...common,
    sentinels: sn.hosts,
    name: sn.master,
    db: sn.db,
    ...(sn.password ? { password: sn.password } : {}),
    ...(sn.sentinelPassword ? { sentinelPassword: sn.sentinelPassword } : {}),
  });
}

/**
 * QUIT when connected (a clean goodbye), else just drop the socket: a QUIT queued on a
 * connection that will never reconnect would wait forever.
 */
export async function shut(r: RedisClient): Promise<void> {
  if (r.status === "ready") await Promise.race([r.quit().catch(() => {}), new Promise((done) => setTimeout(done, 1_000))]);
  r.disconnect();
}

/** Whether `err` says the server is away (or not serving) rather than that the command was wrong. */
export function isConnectionError(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|connect|Reached the max retries|LOADING|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN/i.test(msg);
}
