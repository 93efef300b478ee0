/**
 * The configuration of one site of a two-site test (A and B peered through the relay or the
 * WAN), written into a scratch directory: `<name>.toml`, its bus key `<name>-bus.key`, its
 * socket `<name>.sock`. The suites differ only in the options they pass.
 */
import { writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";

export interface SitePeer {
  origin: string;
  keys: string[];
  accept: string[];
  forward: string[];
  transport?: "relay" | "wan";
  ratePerSecond?: number;
}

export interface SiteOptions {
  /** The scratch directory the files go in. */
  dir: string;
  name: string;
  port: number;
  /** Default: http://127.0.0.1:<port>. */
  origin?: string;
  /** Default: <dir>/<name>-id.key. */
  keyFile?: string;
  /** The bus key's secret. */
  secret: string;
  /** The bus's Redis URL, or with `redisCluster` "" (the Cluster's nodes instead). */
  redis: string;
  redisCluster?: string[];
  blockMs?: number;
  /** Lines added under [bus.redis]. */
  redisExtra?: string;
  /** [node] state_dir, when the suite does not pass --state-dir. */
  stateDir?: string;
  logLevel?: string;
  durable?: string[];
  /** Lines added under [federation]. */
  federation?: string;
  peer: SitePeer;
  /** The WAN's NATS servers, and lines added under [wan]; no [wan] without it. */
  wan?: { natsUrls: string[]; extra?: string };
  /** Anything else, appended as is. */
  extra?: string;
}

const list = (xs: readonly string[]) => xs.map((x) => `"${x}"`).join(", ");

export function siteToml(o: SiteOptions): string {
  const p = (f: string) => join(o.dir, f);
  const lines = [
    ...(o.stateDir ? ["[node]", `state_dir = "${o.stateDir}"`] : []),
    ...(o.logLevel ? ["[log]", `level = "${o.logLevel}"`] : []),
    "[instance]",
    `origin = "${o.origin ?? `http://127.0.0.1:${o.port}`}"`,
    `key_file = "${o.keyFile ?? p(`${o.name}-id.key`)}"`,
    "[http]",
    `listen = "127.0.0.1:${o.port}"`,
    "[api]",
    `socket = "${p(`${o.name}.sock`)}"`,
    "[bus.redis]",
    o.redisCluster ? `cluster_nodes = [${list(o.redisCluster)}]` : `url = "${o.redis}"`,
    ...(o.blockMs !== undefined ? [`block_ms = ${o.blockMs}`] : []),
    ...(o.redisExtra ? [o.redisExtra] : []),
    "[[bus.keys]]",
    `id = "${o.name}1"`,
    `secret_file = "${p(`${o.name}-bus.key`)}"`,
    ...(o.durable ?? []).flatMap((c) => ["[[bus.channels]]", `name = "${c}"`, "durable = true"]),
    "[federation]",
    ...(o.federation ? [o.federation] : []),
    "[[federation.peers]]",
    `origin = "${o.peer.origin}"`,
    ...(o.peer.transport ? [`transport = "${o.peer.transport}"`] : []),
    `public_keys = [${list(o.peer.keys)}]`,
    `accept_channels = [${list(o.peer.accept)}]`,
    `forward_channels = [${list(o.peer.forward)}]`,
    ...(o.peer.ratePerSecond !== undefined ? [`rate_per_second = ${o.peer.ratePerSecond}`] : []),
    ...(o.wan ? ["[wan]", `nats_urls = [${list(o.wan.natsUrls)}]`, "manage_streams = true", ...(o.wan.extra ? [o.wan.extra] : [])] : []),
    ...(o.extra ? [o.extra] : []),
  ];
  return lines.join("\n") + "\n";
}

/** Writes the site's bus key and configuration (0600); the configuration's path. */
export function writeSite(o: SiteOptions): string {
  const write = (f: string, text: string) => {
    const file = join(o.dir, f);
    writeFileSync(file, text);
    chmodSync(file, 0o600);
    return file;
  };
  write(`${o.name}-bus.key`, o.secret);
  return write(`${o.name}.toml`, siteToml(o));
}
