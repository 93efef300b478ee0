/**
 * The federation audit log: one JSON line per accepted attempt, and per refused one, each
 * line carrying `prev`, the SHA-256 (hex) of the previous line's bytes (the very first line's
 * is 64 zeros). Editing or deleting a line breaks every later link: `pilox-mesh audit verify`.
 *
 * Refusals come from anyone who can reach the listener, so they are aggregated: the first of
 * a (client, reason) pair in a window is written at once, the rest are counted and written as
 * one line `{…, count, aggregated: true}` when the window ends. The file is rotated at a size
 * bound (`audit.jsonl` → `audit.jsonl.1` → …, the oldest dropped); the chain runs on across
 * files, so the first line of a new file links to the last line of the previous one.
 */
import { createHash } from "node:crypto";
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";

export const GENESIS = "0".repeat(64);

export interface AuditEntry {
  direction: "inbound" | "outbound";
  outcome: "accepted" | "refused";
  reason?: string;
  peer?: string;
  client?: string;
  messages?: number;
  detail?: string;
  /** On aggregated refusal lines: how many refusals the line stands for. */
  count?: number;
  aggregated?: boolean;
}

export interface AuditOptions {
  /** Rotate once the file is larger than this. */
  maxBytes: number;
  /** Rotated files kept beside the current one. */
  keep: number;
  /** Window over which refusals of one (client, reason) are aggregated. */
  windowMs: number;
}

const DEFAULTS: AuditOptions = { maxBytes: 64 * 1024 * 1024, keep: 5, windowMs: 60_000 };
/** Distinct (client, reason) pairs followed per window; past it they share one line per reason. */
const MAX_PAIRS = 10_000;

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

export class AuditLog {
  #prev: string;
  #size: number;
  readonly #o: AuditOptions;
  /** Refusals counted in this window beyond the first, by pair. */
  readonly #held = new Map<string, { entry: Omit<AuditEntry, "outcome">; count: number }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly file: string,
    o: Partial<AuditOptions> = {},
  ) {
    this.#o = { ...DEFAULTS, ...o };
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.#size = existsSync(file) ? statSync(file).size : 0;
    this.#prev = this.#size > 0 ? lastLineHash(file) : existsSync(`${file}.1`) ? lastLineHash(`${file}.1`) : GENESIS;
  }

  append(e: AuditEntry): void {
    const line = JSON.stringify({ ts: new Date().toISOString(), ...e, prev: this.#prev });
    if (this.#size > 0 && this.#size + line.length + 1 > this.#o.maxBytes) this.#rotate();
    appendFileSync(this.file, line + "\n", { mode: 0o600 });
    this.#size += Buffer.byteLength(line) + 1;
    this.#prev = sha(line);
  }

  /** A refusal: written at once if it is the first of its (client, reason) in this window. */
  refused(e: Omit<AuditEntry, "outcome">): void {
    const over = this.#held.size >= MAX_PAIRS;
    const pair = `${over ? "*" : (e.client ?? "")}\n${e.peer ?? ""}\n${e.reason ?? ""}`;
    const held = this.#held.get(pair);
    if (held) {
      held.count++;
      return;
    }
    this.#held.set(pair, { entry: over ? { ...e, client: "*" } : e, count: 0 });
    if (!over) this.append({ ...e, outcome: "refused" });
    this.#timer ??= setTimeout(() => this.flush(), this.#o.windowMs).unref();
  }

  /** Writes the counts held for the window that ends now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const held = [...this.#held.values()];
    this.#held.clear();
    for (const { entry, count } of held) {
      if (count > 0) this.append({ ...entry, outcome: "refused", count, aggregated: true, detail: `${count} more in ${Math.round(this.#o.windowMs / 1000)} s` });
    }
  }

  close(): void {
    this.flush();
  }

  #rotate(): void {
    rmSync(`${this.file}.${this.#o.keep}`, { force: true });
    for (let i = this.#o.keep - 1; i >= 1; i--) if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
    if (this.#o.keep > 0) renameSync(this.file, `${this.file}.1`);
    else rmSync(this.file, { force: true });
    this.#size = 0; // #prev carries on: the chain continues in the new file
  }
}

/** The hash of the last complete line (reads only the file's tail). */
function lastLineHash(file: string): string {
  const size = statSync(file).size;
  if (size === 0) return GENESIS;
  const n = Math.min(size, 64 * 1024);
  const buf = Buffer.alloc(n);
  const fd = openSync(file, "r");
  try {
    readSync(fd, buf, 0, n, size - n);
  } finally {
    closeSync(fd);
  }
  const text = buf.toString("utf8").replace(/\n$/, "");
  return sha(text.slice(text.lastIndexOf("\n") + 1));
}

export type AuditCheck = { ok: true; lines: number; continues?: string } | { ok: false; file: string; line: number; reason: string };

/**
 * Checks the chain through `files`, oldest first (e.g. audit.jsonl.2 audit.jsonl.1
 * audit.jsonl). The first file may continue a chain whose start was rotated away: then
 * `continues` names the hash it links to, which no file given can confirm.
 */
export function verifyAuditFiles(files: readonly string[]): AuditCheck {
  let prev: string | undefined;
  let continues: string | undefined;
  let total = 0;
  for (const file of files) {
    const lines = readFileSync(file, "utf8").split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    for (let i = 0; i < lines.length; i++) {
      let rec: { prev?: unknown };
      try {
        rec = JSON.parse(lines[i]!) as { prev?: unknown };
      } catch {
        return { ok: false, file, line: i + 1, reason: "not JSON" };
      }
      if (prev === undefined) {
        if (typeof rec.prev !== "string" || !/^[0-9a-f]{64}$/.test(rec.prev)) return { ok: false, file, line: i + 1, reason: "no prev hash" };
        if (rec.prev !== GENESIS) continues = rec.prev;
      } else if (rec.prev !== prev) {
        return { ok: false, file, line: i + 1, reason: "prev does not match the previous line (edited, removed or reordered)" };
      }
      prev = sha(lines[i]!);
      total++;
    }
  }
  return continues ? { ok: true, lines: total, continues } : { ok: true, lines: total };
}

export function verifyAuditFile(file: string): AuditCheck {
  return verifyAuditFiles([file]);
}
