/**
 * The NATS connection, with the client loaded only when [wan] is configured (like ioredis): an
 * appliance without a WAN never loads it. Auth comes from files read by the config's secrets.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config, WanSecrets } from "../config/index.ts";
import type { Logger } from "../log/index.ts";

export type Nats = typeof import("@nats-io/transport-node");
export type Js = typeof import("@nats-io/jetstream");

export async function loadClient(): Promise<{ nats: Nats; js: Js }> {
  const [nats, js] = await Promise.all([import("@nats-io/transport-node"), import("@nats-io/jetstream")]);
  return { nats, js };
}

export async function connectNats(nats: Nats, c: Config, s: WanSecrets | undefined, log: Logger): Promise<NatsConnection> {
  const w = c.wan;
  const opts: Parameters<Nats["connect"]>[0] = {
    servers: w.nats_urls.map((u) => u.replace(/^nats:\/\//, "")),
    name: `pilox-mesh ${c.node.name}`,
    timeout: w.connect_timeout_ms,
    // Once connected, keep trying forever: the queues on disk hold what is published meanwhile.
    // (The first connection is retried by the caller, so that a stop can end it.)
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    // Otherwise every request (each frame's publish, each ackAck) captures a stack trace up
    // front for a timeout that rarely comes: ~50 µs of CPU per frame at each site, measured.
    noAsyncTraces: true,
  };
  if (s?.creds) opts.authenticator = nats.credsAuthenticator(new Uint8Array(s.creds));
  else if (s?.nkeySeed) opts.authenticator = nats.nkeyAuthenticator(new Uint8Array(s.nkeySeed));
  else if (s?.token) opts.token = s.token.toString("utf8");
  else if (s?.user) {
    opts.user = s.user;
    opts.pass = s.password ?? "";
  }
  if (s?.tls) opts.tls = { ...s.tls };
  const nc = await nats.connect(opts);
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === "disconnect") log.warn("NATS disconnected; publishes wait in the WAN queue", { server: String((st as { server?: string }).server ?? "") });
      else if (st.type === "reconnect") log.info("NATS reconnected", { server: String((st as { server?: string }).server ?? "") });
      else if (st.type === "error") log.limited("nats-error", "warn", "NATS error", { error: String((st as { error?: unknown }).error ?? "") });
    }
  })().catch(() => {});
  return nc;
}

/** True when the server's version is at least `major.minor` (features newer than 2.9 are asked this way). */
export function serverAtLeast(nc: NatsConnection | undefined, major: number, minor: number, patch = 0): boolean {
  const v = /^(\d+)\.(\d+)\.(\d+)/.exec(nc?.info?.version ?? "");
  if (!v) return false;
  const have = [Number(v[1]), Number(v[2]), Number(v[3])];
  const want = [major, minor, patch];
  for (let i = 0; i < 3; i++) if (have[i] !== want[i]) return have[i]! > want[i]!;
  return true;
}
