/**
 * What a reload may change on a running appliance. The bus backend (and with it where durable
 * messages are stored) stays until restart, so a new configuration is checked against it; and
 * a reload that would drop bus keys, federation peers or channels, turn a durable channel
 * best-effort, or change the advertised origin is refused unless the operator says so
 * (`pilox-mesh reload --allow-removals`): an empty or truncated file must not do it silently.
 */
import type { Config } from "./load.ts";

export interface ReloadCheck {
  /** Differences a reload can never apply (restart needed). */
  refused: string[];
  /** Removals, applied only with allowRemovals. */
  removals: string[];
}

const missing = (before: Iterable<string>, after: Iterable<string>) => {
  const a = new Set(after);
  return [...before].filter((x) => !a.has(x));
};

export function checkReload(running: Config, next: Config): ReloadCheck {
  const refused: string[] = [];
  const removals: string[] = [];
  if (next.bus.backend !== running.bus.backend) {
    refused.push(`bus.backend would become "${next.bus.backend}", but the running appliance uses "${running.bus.backend}" until it restarts`);
  }
  const keys = missing(running.bus.keys.map((k) => k.id), next.bus.keys.map((k) => k.id));
  if (running.bus.keys.length > 0 && next.bus.keys.length === 0) removals.push("every bus key ([[bus.keys]] would be empty: the appliance would sign with a generated key no other agent knows)");
  else if (keys.length) removals.push(`bus keys ${keys.join(", ")}`);
  const peers = missing(running.federation.peers.map((p) => p.origin), next.federation.peers.map((p) => p.origin));
  if (peers.length) removals.push(`federation peers ${peers.join(", ")}`);
  if (running.federation.manifest.url && !next.federation.manifest.url) removals.push(`the federation manifest ${running.federation.manifest.url}`);
  const channels = missing(running.bus.channels.map((c) => c.name), next.bus.channels.map((c) => c.name));
  if (channels.length) removals.push(`channels ${channels.join(", ")}`);
  const nextDurable = new Set(next.bus.channels.filter((c) => c.durable).map((c) => c.name));
  const demoted = running.bus.channels.filter((c) => c.durable && !nextDurable.has(c.name) && !channels.includes(c.name)).map((c) => c.name);
  if (demoted.length) removals.push(`durability of channels ${demoted.join(", ")} (they would become best-effort)`);
  if (next.instance.origin !== running.instance.origin) removals.push(`the advertised origin ${running.instance.origin} (it would become ${next.instance.origin})`);
  return { refused, removals };
}

/** The error text of a refused reload, or undefined when it may go ahead. */
export function reloadRefusal(running: Config, next: Config, allowRemovals: boolean): string | undefined {
  const r = checkReload(running, next);
  const lines = [...r.refused];
  if (r.removals.length && !allowRemovals) {
    lines.push(`the new configuration removes ${r.removals.join("; ")}. If that is intended, run: pilox-mesh reload --allow-removals`);
  }
  return lines.length ? lines.join("\n") : undefined;
}

/** Settings that only a restart can change; a reload that changes them names them. */
export function restartOnlyChanges(a: Config, b: Config): string[] {
  const keys: [string, (c: Config) => unknown][] = [
    ["http.listen", (c) => c.http.listen],
    ["api.socket", (c) => c.api.socket],
    ["api.socket_mode", (c) => c.api.socket_mode],
    ["api.listen", (c) => c.api.listen],
    ["log", (c) => c.log],
    ["bus.redis", (c) => c.bus.redis],
    ["bus.producer", (c) => c.bus.producer],
    ["bus.replay_cache_size", (c) => c.bus.replay_cache_size],
    ["bus.spool", (c) => c.bus.spool],
    ["federation.audit_max_bytes", (c) => c.federation.audit_max_bytes],
    ["federation.audit_keep", (c) => c.federation.audit_keep],
    ["federation.audit_window_seconds", (c) => c.federation.audit_window_seconds],
    ["registry.enabled", (c) => c.registry.enabled],
    ["gateway.enabled", (c) => c.gateway.enabled],
    ["registry.postgres", (c) => c.registry.postgres],
    // The NATS connection and where frames live are fixed for a run; frame sizes, waits and
    // attempt limits follow a reload.
    ["wan.nats_urls", (c) => c.wan.nats_urls],
    ["wan.auth", (c) => [c.wan.creds_file, c.wan.nkey_seed_file, c.wan.token_file, c.wan.user, c.wan.password_file, c.wan.tls_ca_file, c.wan.tls_cert_file, c.wan.tls_key_file]],
    ["wan.stream", (c) => [c.wan.stream, c.wan.dlq_stream, c.wan.subject_prefix, c.wan.dlq_subject_prefix, c.wan.manage_streams, c.wan.stream_max_age_seconds, c.wan.stream_max_bytes, c.wan.duplicate_window_seconds, c.wan.ack_wait_seconds, c.wan.max_deliver]],
    ["wan.pilox", (c) => [c.wan.pilox.stream, c.wan.pilox.subjects, c.wan.pilox.ingest]],
    ["node", (c) => c.node],
  ];
  return keys.filter(([, get]) => JSON.stringify(get(a)) !== JSON.stringify(get(b))).map(([k]) => k);
}
