/** `peers`: the federation status of the running appliance. `audit verify`: check the log's chain. */
import { verifyAuditFiles } from "../../federation/index.ts";
import { EXIT, parse, UsageError, type Io } from "../args.ts";
import { apiRequest } from "../client.ts";
import { applianceSocket } from "../socket.ts";

/** --socket, else the agent API socket of the configuration. */

interface PeerStatus {
  origin: string;
  keys: { kid: string }[];
  queue: { messages: number };
  lastContact: string | null;
  lastError: string | null;
  acceptChannels: string[];
  forwardChannels: string[];
  transport?: "relay" | "wan";
}

export async function peers(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { socket: { type: "string" }, json: { type: "boolean" } });
  const socketPath = applianceSocket(values, io, "peers");
  const { status, json } = await apiRequest({ socketPath }, "GET", "/v1/federation/status");
  if (status !== 200) {
    io.stderr(`pilox-mesh peers: the appliance answered ${status}\n`);
    return EXIT.failure;
  }
  if (values.json) {
    io.stdout(JSON.stringify(json, null, 2) + "\n");
    return EXIT.ok;
  }
  const list = (json as { peers: PeerStatus[] }).peers;
  const m = (json as { manifest?: { unversioned?: boolean; url?: string; issuedAt?: string | null } | null }).manifest;
  if (m?.unversioned) io.stdout(`warning: the manifest ${m.url} is a stock one without manifestExt (no expiry; rollback refused by issuedAt ${m.issuedAt} only)\n`);
  if (list.length === 0) {
    io.stdout("no federation peers configured\n");
    return EXIT.ok;
  }
  const wan = (json as { wan?: { connected: boolean; server: string | null; error: string | null } }).wan;
  if (wan) io.stdout(`wan: ${wan.connected ? `connected to ${wan.server ?? "NATS"}` : `NOT CONNECTED${wan.error ? ` (${wan.error})` : ""}`}\n`);
  const rows = [["PEER", "TRANSPORT", "KEYS", "QUEUE", "LAST CONTACT", "ACCEPT", "FORWARD", "LAST ERROR"]];
  for (const p of list) {
    rows.push([
      p.origin,
      p.transport ?? "relay",
      p.keys.map((k) => k.kid.slice(0, 8)).join(","),
      String(p.queue.messages),
      p.lastContact ?? "-",
      p.acceptChannels.join(",") || "-",
      p.forwardChannels.join(",") || "-",
      p.lastError ?? "-",
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) io.stdout(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd() + "\n");
  return EXIT.ok;
}

export async function audit(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const usage = "usage: pilox-mesh audit verify FILE [FILE…]   (rotated files oldest first: audit.jsonl.2 audit.jsonl.1 audit.jsonl)";
  if (sub !== "verify") throw new UsageError(usage);
  const { positionals } = parse(rest, {}, true);
  if (positionals.length === 0) throw new UsageError(usage);
  const r = verifyAuditFiles(positionals);
  if (!r.ok) {
    io.stdout(`broken at ${r.file} line ${r.line}: ${r.reason}\n`);
    return EXIT.failure;
  }
  io.stdout(`intact: ${r.lines} lines${r.continues ? ` (continues a chain from ${r.continues}, in a rotated file not given)` : ""}\n`);
  return EXIT.ok;
}

/** `reload`: ask the running appliance to re-read its configuration (like SIGHUP). */
export async function reload(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { socket: { type: "string" }, "allow-removals": { type: "boolean" } });
  const socketPath = applianceSocket(values, io, "reload");
  const { status, json } = await apiRequest({ socketPath }, "POST", "/v1/admin/reload", values["allow-removals"] ? { allowRemovals: true } : undefined);
  if (status === 200) {
    const pending = (json as { pendingRestart?: string[] }).pendingRestart ?? [];
    io.stdout(pending.length ? `reloaded; these changed settings take effect at the next restart: ${pending.join(", ")}\n` : "reloaded\n");
    return EXIT.ok;
  }
  io.stderr(`pilox-mesh reload: rejected, the running configuration stays:\n${json?.error?.message ?? JSON.stringify(json)}\n`);
  return status === 422 ? EXIT.config : EXIT.failure;
}
