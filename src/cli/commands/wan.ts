/** `wan dlq list|replay`: the WAN's dead letters, through the running appliance's agent API. */
import { EXIT, intFlag, parse, UsageError, type Io } from "../args.ts";
import { apiRequest } from "../client.ts";
import { applianceSocket } from "../socket.ts";

export const WAN_USAGE = `usage:
  pilox-mesh wan dlq list [--after ID] [--limit N] [--json] [--socket PATH]
  pilox-mesh wan dlq replay ID [--socket PATH]
  The WAN's dead letters: frames (or entries of frames) this site refused, with the reason.
  list: oldest first, after ID (default the first), at most N (default 100, 1-10000).
  replay: checks the frame again with today's peers, keys and accept_channels (after fixing
  what made it fail) and delivers it, or the one refused entry, once.
  exit 0 ok, 1 refused (the reason is printed), 2 usage, 69 appliance unreachable`;

interface DeadLetter {
  id: number;
  at: string | null;
  reason: string;
  detail: string | null;
  sender: string | null;
  entry: number | null;
}

export async function wan(args: string[], io: Io): Promise<number> {
  const [group, sub, ...rest] = args;
  if (group !== "dlq" || (sub !== "list" && sub !== "replay")) throw new UsageError(WAN_USAGE);
  const { values, positionals } = parse(rest, { socket: { type: "string" }, json: { type: "boolean" }, after: { type: "string" }, limit: { type: "string" } }, sub === "replay");
  const socketPath = applianceSocket(values, io, "wan dlq");
  if (sub === "list") {
    const after = intFlag(values.after, "--after", 0, Number.MAX_SAFE_INTEGER) ?? 0;
    const limit = intFlag(values.limit, "--limit", 1, 10_000) ?? 100;
    const { status, json } = await apiRequest({ socketPath }, "GET", `/v1/admin/wan/dlq?after=${after}&limit=${limit}`);
    if (status !== 200) {
      io.stderr(`pilox-mesh wan dlq list: ${json?.error?.message ?? `the appliance answered ${status}`}\n`);
      return EXIT.failure;
    }
    const list = (json as { deadLetters: DeadLetter[] }).deadLetters;
    if (values.json) {
      io.stdout(JSON.stringify(list, null, 2) + "\n");
      return EXIT.ok;
    }
    if (list.length === 0) {
      io.stdout("no dead letters\n");
      return EXIT.ok;
    }
    const rows = [["ID", "TIME", "REASON", "SENDER", "ENTRY", "DETAIL"]];
    for (const d of list) rows.push([String(d.id), d.at ?? "-", d.reason, d.sender ?? "-", d.entry === null ? "frame" : String(d.entry), d.detail ?? "-"]);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) io.stdout(r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd() + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(WAN_USAGE);
  const id = intFlag(positionals[0], "ID", 1, Number.MAX_SAFE_INTEGER)!;
  const { status, json } = await apiRequest({ socketPath }, "POST", "/v1/admin/wan/dlq/replay", { id });
  if (status === 200) {
    const refused = (json as { refused: { index: number; reason: string }[] }).refused;
    io.stdout(`delivered ${json.delivered} message(s)${refused.length ? `; still refused: ${refused.map((r) => `entry ${r.index} (${r.reason})`).join(", ")}` : ""}\n`);
    return EXIT.ok;
  }
  io.stderr(`pilox-mesh wan dlq replay: ${json?.error?.code ?? status}: ${json?.error?.message ?? ""}\n`);
  return EXIT.failure;
}
