/** `status`: what the running appliance is doing, readable (or --json for scripts). */
import { EXIT, parse, type Io } from "../args.ts";
import { apiRequest } from "../client.ts";
import { applianceSocket } from "../socket.ts";
import { placementLine, type StreamPlacement } from "../../wan/index.ts";

interface Status {
  version: string;
  node: string;
  uptimeSeconds: number;
  origin: string;
  configFiles: string[];
  listeners: string[];
  lastReload: { ok: boolean; at: string; error?: string; pendingRestart?: string[] } | null;
  warnings?: string[];
  bus: {
    backend: string;
    ready: boolean;
    detail: string;
    warnings: string[];
    primaryKey: string;
    keys: string[];
    channels: { name: string; durable: boolean; maxAgeSeconds: number }[];
    spool: { messages: number; bytes: number; maxBytes: number };
  };
  federation: {
    enabled: boolean;
    manifest: { url: string; lastSyncOk: boolean | null; seq: number | null; unversioned?: boolean } | null;
    orphanedGroups: { channel: string; group: string }[];
    peers: { origin: string; transport?: string; queue: { messages: number }; lastContact: string | null; lastError: string | null; deadLettered: number }[];
  };
  registry?: { storage: string; peers: Record<string, { protocol?: string | null; merged: number; lastOk: string | null; lastError: string | null; refused: Record<string, number> }> } | null;
  wan?: { connected: boolean; server: string | null; serverVersion: string | null; error: string | null; stream: string; placement?: StreamPlacement | null; consumer: string; queue: { messages: number; oldestAgeSeconds: number | null }; receiver: { delivered: number; duplicates: number; deadLettered: number; pending: number | null } } | null;
}

export async function status(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { socket: { type: "string" }, json: { type: "boolean" } });
  const socketPath = applianceSocket(values, io, "status");
  const r = await apiRequest({ socketPath }, "GET", "/v1/status");
  if (r.status !== 200) {
    io.stderr(`pilox-mesh status: the appliance answered ${r.status}\n`);
    return EXIT.failure;
  }
  if (values.json) {
    io.stdout(JSON.stringify(r.json, null, 2) + "\n");
    return EXIT.ok;
  }
  const s = r.json as Status;
  const lines: string[] = [];
  const kv = (k: string, v: string) => lines.push(`${(k + ":").padEnd(14)}${v}`);
  kv("version", s.version);
  kv("node", `${s.node}, up ${duration(s.uptimeSeconds)}, origin ${s.origin}`);
  kv("config", s.configFiles.length ? s.configFiles.join(", ") : "(defaults)");
  kv("listening", s.listeners.join(", "));
  kv(
    "last reload",
    s.lastReload
      ? `${s.lastReload.ok ? "applied" : "REFUSED"} at ${s.lastReload.at}${s.lastReload.error ? `: ${s.lastReload.error.split("\n")[0]}` : ""}${s.lastReload.pendingRestart?.length ? ` (restart needed for ${s.lastReload.pendingRestart.join(", ")})` : ""}`
      : "none since start",
  );
  kv("bus", `${s.bus.backend}, ${s.bus.ready ? "ready" : "NOT READY"} (${s.bus.detail}); signing key ${s.bus.primaryKey} of ${s.bus.keys.join(", ")}`);
  kv("channels", s.bus.channels.length ? s.bus.channels.map((c) => `${c.name}${c.durable ? " (durable)" : ""}`).join(", ") : "(all best-effort)");
  kv("spool", `${s.bus.spool.messages} messages, ${s.bus.spool.bytes} of ${s.bus.spool.maxBytes} bytes`);
  for (const w of [...(s.warnings ?? []), ...s.bus.warnings]) kv("warning", w);
  const f = s.federation;
  if (!f.enabled) kv("federation", "off");
  else {
    kv("federation", `${f.peers.length} peer(s)${f.manifest ? `; manifest ${f.manifest.url} ${f.manifest.lastSyncOk === false ? "FAILING" : "ok"}${f.manifest.unversioned ? " (unversioned)" : ""}` : ""}`);
    for (const p of f.peers) {
      kv("  peer", `${p.origin} (${p.transport ?? "relay"}): queue ${p.queue.messages}, last contact ${p.lastContact ?? "never"}${p.deadLettered ? `, ${p.deadLettered} dead-lettered` : ""}${p.lastError ? `, last error: ${p.lastError}` : ""}`);
    }
    for (const g of f.orphanedGroups) kv("warning", `consumer group ${g.group} on ${g.channel} belongs to no configured peer`);
  }
  const w = s.wan;
  if (w) {
    kv("wan", `${w.connected ? `connected to ${w.server} (nats-server ${w.serverVersion})` : `NOT CONNECTED${w.error ? `: ${w.error}` : ""}`}; stream ${w.stream}, consumer ${w.consumer}`);
    if (w.placement) kv("  stream", placementLine(w.placement));
    kv("  outbound", `${w.queue.messages} queued${w.queue.oldestAgeSeconds !== null ? `, oldest ${duration(w.queue.oldestAgeSeconds)}` : ""}`);
    kv("  inbound", `${w.receiver.delivered} delivered, ${w.receiver.duplicates} repeats dropped, ${w.receiver.deadLettered} dead-lettered, ${w.receiver.pending ?? "?"} pending`);
  }
  const reg = s.registry;
  if (reg) {
    kv("registry", `${reg.storage} store, ${Object.keys(reg.peers).length} peer(s) synced`);
    for (const [url, p] of Object.entries(reg.peers)) {
      const refused = Object.entries(p.refused).map(([k, n]) => `${k} ${n}`).join(", ");
      // Which protocol the peer speaks: ours (signed change feed) or the reference's (catalog + GET per handle).
      kv("  peer", `${url} (${p.protocol === "reference" ? "reference protocol: catalog + GET per handle" : p.protocol === "feed" ? "change feed" : "protocol not known yet"}): ${p.merged} merged, last ok ${p.lastOk ?? "never"}${refused ? `; refused: ${refused}` : ""}${p.lastError ? `; last error: ${p.lastError}` : ""}`);
    }
  }
  io.stdout(lines.join("\n") + "\n");
  return EXIT.ok;
}

function duration(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}
