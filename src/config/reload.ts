/**
 * What a reload may change on a running appliance. The bus backend (and with it where durable
 * messages are stored) stays until restart, so a new configuration is checked against it; and
 * a reload that would drop bus keys, federation peers or channels, turn a durable channel
 * best-effort, or change the advertised origin is refused unless the operator says so
 * (`pilox-mesh reload --allow-removals`): an empty or truncated file must not do it silently.
 */
import { pinRestartOnly, restartOnlyDiff, schemaKeys } from "./keys.ts";
import type { Config } from "./load.ts";
import { ConfigSchema } from "./schema.ts";

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

/** The restart-only keys (marked in the schema), read once. */
const KEYS = schemaKeys(ConfigSchema);

/** Settings that only a restart can change, by key, that differ in `b` (what a reload names). */
export function restartOnlyChanges(a: Config, b: Config): string[] {
  return restartOnlyDiff(KEYS, a, b);
}

/**
 * What a running appliance applies of `next`: every restart-only key keeps its running value, so
 * every role sees one consistent configuration (a forwarder for a new peer uses the running
 * state directory, not the next one).
 */
export function pinnedForReload(running: Config, next: Config): Config {
  return pinRestartOnly(KEYS, running, next);
}
