/**
 * The Redis connection layer, shared by every role that keeps state in Redis (the bus, the
 * gateway's buckets, federation's replay memory): one server by URL, a master through
 * Sentinel, or a Cluster, and how to let go of a connection.
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { keySlot } from "./slot.ts";

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
      // Not ioredis' auto-pipelining: it groups commands by the nodes its slot map lists for
      // them, and while a failover changes that map its pipelines fail ("same slots allocation
      // group") until the map settles, which stalled WAN delivery for minutes in the tests.
      enableAutoPipelining: false,
      // A fail-fast client fails fast on each node too: a command routed to a node whose
      // connection is gone (replaced in a failover) would otherwise wait in that node's queue.
      redisOptions: { ...node, ...(enableOfflineQueue === false ? { enableOfflineQueue: false } : {}), ...(t.cluster.password ? { password: t.cluster.password } : {}) },
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
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|connect|Reached the max retries|LOADING|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|All keys in the pipeline should belong to the same slot/i.test(msg);
}

/**
 * The connection a Cluster client holds to the master serving `key` now (what a command on that
 * key went through), from the client's slot map; undefined while the map has no owner for it.
 */
export function masterOf(cluster: Cluster, key: string): Redis | undefined {
  const owner = cluster.slots[keySlot(key)]?.[0];
  if (!owner) return undefined;
  return cluster.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === owner);
}
