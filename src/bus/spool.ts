/**
 * The on-disk spool for durable publishes made while Redis is unreachable. Entries are JSON
 * lines, appended before the publish is acknowledged, flushed in order when Redis returns.
 * Bounded by bytes: at the bound a publish is refused (503 spool_full), never dropped.
 * A crash during a flush resends a few entries; receivers drop them by event id.
 */
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export interface SpoolEntry {
  channel: string;
  /** The message with its meshMeta; it is sealed when it leaves the spool. */
  message: Record<string, unknown>;
}

export class SpoolFullError extends Error {
  override name = "SpoolFullError";
}

export class Spool {
  readonly #file: string;
  readonly #offsetFile: string;
  #entries: { e: SpoolEntry; bytes: number }[] = [];
  #head = 0;
  #bytes = 0;
  /** Byte offset in the file of the first entry not yet flushed. */
  #offset = 0;

  constructor(dir: string, readonly maxBytes: number) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#file = join(dir, "durable.jsonl");
    this.#offsetFile = join(dir, "durable.offset");
    this.#load();
  }

  #load(): void {
    if (!existsSync(this.#file)) return;
    const buf = readFileSync(this.#file);
    this.#offset = existsSync(this.#offsetFile) ? Number(readFileSync(this.#offsetFile, "utf8").trim()) || 0 : 0;
    let pos = this.#offset;
    while (pos < buf.length) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) break; // a torn last line: its publish was never acknowledged
      const line = buf.subarray(pos, nl).toString("utf8");
      try {
        this.#entries.push({ e: JSON.parse(line) as SpoolEntry, bytes: nl + 1 - pos });
        this.#bytes += nl + 1 - pos;
      } catch {
        /* skip a corrupt line rather than refuse to start */
      }
      pos = nl + 1;
    }
  }

  get size(): number {
    return this.#entries.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  append(entry: SpoolEntry): void {
    const line = JSON.stringify(entry) + "\n";
    const bytes = Buffer.byteLength(line);
    if (this.#bytes + bytes > this.maxBytes) throw new SpoolFullError(`spool is full (${this.maxBytes} bytes)`);
    if (!existsSync(dirname(this.#file))) mkdirSync(dirname(this.#file), { recursive: true, mode: 0o700 });
    appendFileSync(this.#file, line, { mode: 0o600 });
    this.#entries.push({ e: entry, bytes });
    this.#bytes += bytes;
  }

  peek(n: number): SpoolEntry[] {
    return this.#entries.slice(this.#head, this.#head + n).map((x) => x.e);
  }

  /** Marks the first `n` entries as sent. */
  drop(n: number): void {
    for (let i = 0; i < n && this.#head < this.#entries.length; i++) {
      const x = this.#entries[this.#head++]!;
      this.#bytes -= x.bytes;
      this.#offset += x.bytes;
    }
    if (this.size === 0) {
      this.#entries = [];
      this.#head = 0;
      this.#offset = 0;
      this.#bytes = 0;
      closeSync(openSync(this.#file, "w", 0o600));
      this.#writeOffset();
      return;
    }
    this.#writeOffset();
    if (this.#head > 4096) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  #writeOffset(): void {
    const tmp = this.#offsetFile + ".tmp";
    writeFileSync(tmp, String(this.#offset), { mode: 0o600 });
    renameSync(tmp, this.#offsetFile);
  }
}
