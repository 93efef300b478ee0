/**
 * The federation audit log: one JSON line per accepted or refused attempt, append-only, each
 * line carrying `prev`, the SHA-256 (hex) of the previous line's bytes (the first line's is 64
 * zeros). Editing or deleting a line breaks every later link: `pilox-mesh audit verify FILE`.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, openSync, readSync, closeSync, statSync, readFileSync } from "node:fs";
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
}

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

export class AuditLog {
  #prev: string;

  constructor(readonly file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.#prev = existsSync(file) ? lastLineHash(file) : GENESIS;
  }

  append(e: AuditEntry): void {
    const line = JSON.stringify({ ts: new Date().toISOString(), ...e, prev: this.#prev });
    appendFileSync(this.file, line + "\n", { mode: 0o600 });
    this.#prev = sha(line);
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

export type AuditCheck = { ok: true; lines: number } | { ok: false; line: number; reason: string };

export function verifyAuditFile(file: string): AuditCheck {
  const lines = readFileSync(file, "utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  let prev = GENESIS;
  for (let i = 0; i < lines.length; i++) {
    let rec: { prev?: unknown };
    try {
      rec = JSON.parse(lines[i]!) as { prev?: unknown };
    } catch {
      return { ok: false, line: i + 1, reason: "not JSON" };
    }
    if (rec.prev !== prev) return { ok: false, line: i + 1, reason: "prev does not match the previous line (edited, removed or reordered)" };
    prev = sha(lines[i]!);
  }
  return { ok: true, lines: lines.length };
}
