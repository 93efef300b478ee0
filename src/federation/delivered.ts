/**
 * The relay's memory of what it already republished, (peer, event id) pairs, so that a batch
 * sent again after its answer was lost is not delivered twice. Up to `capacity` pairs, oldest
 * forgotten first, as keyed fingerprints (fingerprints.ts), and on disk so that a restart
 * forgets none:
 *
 *   inbound-delivered.v2    `pilox-mesh relay-delivered 2 <seed hex> <seed hex>`, then one line
 *                           `<16 hex digits>` per pair, oldest first. A pair is appended before
 *                           the relay answers the batch; once the file has grown by `capacity`
 *                           lines it is rewritten from memory (tmp + rename). A torn last line
 *                           (a crash mid-write) is skipped.
 *
 * It replaces `inbound-delivered.journal` (state format 2: one `<expiry> <JSON key>` line per
 * pair, ~70 bytes) and the older `inbound-delivered.json`, which are read once, rewritten in
 * this form and removed. Files are read in chunks, so loading takes no more memory than the
 * pairs themselves.
 */
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import type { Logger } from "../log/index.ts";
import { FingerprintRing, type Fingerprint } from "./fingerprints.ts";
import type { DeliveredSet } from "./inbound.ts";

const MAGIC = "pilox-mesh relay-delivered 2";
const CHUNK = 1 << 20;
/** Pairs written per write() when the file is rewritten. */
const WRITE_BATCH = 16_384;

const LINE = 17;
const HEX = Buffer.from("0123456789abcdef", "latin1");
const hex8 = (n: number) => n.toString(16).padStart(8, "0");

/** Writes `f` as its 16 hex digits and a newline at `at` (no strings made: this runs per pair). */
function putLine(buf: Buffer, at: number, f: Fingerprint): void {
  for (let j = 0, sh = 28; j < 8; j++, sh -= 4) {
    buf[at + j] = HEX[(f.hi >>> sh) & 15]!;
    buf[at + 8 + j] = HEX[(f.lo >>> sh) & 15]!;
  }
  buf[at + 16] = 10;
}

export class DeliveredMemory implements DeliveredSet {
  #ring: FingerprintRing;
  #fd: number | undefined;
  /** Lines added since the last commit. */
  #pending = Buffer.allocUnsafe(LINE * 256);
  #pendingBytes = 0;
  #lines = 0;
  /** The fingerprint has() computed last: add() of the same key follows it. */
  #last: { key: string; f: Fingerprint } | undefined;

  /** `older`: files of earlier formats (the journal, then the JSON snapshot), migrated once. */
  constructor(
    readonly file: string,
    readonly capacity: number,
    private readonly log: Logger,
    readonly older: { journal: string; snapshot: string },
  ) {
    this.#ring = this.#load() ?? new FingerprintRing(capacity, [randomBytes(4).readUInt32LE(0), randomBytes(4).readUInt32LE(0)]);
    const migrated = this.#migrate();
    this.#rewrite();
    // Only once their pairs are safely in the new file.
    if (migrated && this.#fd !== undefined) for (const f of migrated) rmSync(f, { force: true });
  }

  get size(): number {
    return this.#ring.size;
  }

  has(key: string): boolean {
    return this.#ring.has(this.#fingerprint(key));
  }

  /** Remembers the pair; written to disk at the next commit(). */
  add(key: string): void {
    const f = this.#fingerprint(key);
    if (!this.#ring.add(f)) return;
    if (this.#pendingBytes + LINE > this.#pending.length) {
      const bigger = Buffer.allocUnsafe(this.#pending.length * 2);
      this.#pending.copy(bigger, 0, 0, this.#pendingBytes);
      this.#pending = bigger;
    }
    putLine(this.#pending, this.#pendingBytes, f);
    this.#pendingBytes += LINE;
    this.#lines++;
  }

  /** Writes the pairs added since the last commit; compacts once the file has grown enough. */
  commit(): void {
    if (this.#pendingBytes === 0 || this.#fd === undefined) return;
    const n = this.#pendingBytes;
    this.#pendingBytes = 0;
    try {
      writeSync(this.#fd, this.#pending, 0, n);
    } catch (err) {
      this.log.limited("relay-delivered", "error", "cannot write the relay's delivered memory", { file: this.file, error: (err as Error).message });
    }
    if (this.#lines > Math.max(this.capacity, 1_000)) this.#rewrite();
  }

  close(): void {
    this.commit();
    this.#rewrite();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #fingerprint(key: string): Fingerprint {
    if (this.#last?.key === key) return this.#last.f;
    const f = this.#ring.fingerprint(key);
    this.#last = { key, f };
    return f;
  }

  /** The ring from this format's file, or undefined when there is none (or it is unreadable). */
  #load(): FingerprintRing | undefined {
    if (!existsSync(this.file)) return undefined;
    let ring: FingerprintRing | undefined;
    try {
      forEachLine(this.file, (line, n) => {
        if (n === 0) {
          const m = /^pilox-mesh relay-delivered 2 ([0-9a-f]{8}) ([0-9a-f]{8})$/.exec(line);
          if (!m) throw new Error(`the first line is not "${MAGIC} <seed> <seed>"`);
          ring = new FingerprintRing(this.capacity, [parseInt(m[1]!, 16), parseInt(m[2]!, 16)]);
          return;
        }
        if (/^[0-9a-f]{16}$/.test(line)) ring!.add({ hi: parseInt(line.slice(0, 8), 16), lo: parseInt(line.slice(8), 16) });
      });
    } catch (err) {
      this.log.warn("ignoring an unreadable relay delivered memory: a batch retried across this restart may be delivered twice", { file: this.file, error: (err as Error).message });
      return undefined;
    }
    return ring;
  }

  /** Pairs from the files of earlier formats into the ring; the files read, to remove after. */
  #migrate(): string[] | undefined {
    const { journal, snapshot } = this.older;
    const found = [snapshot, journal].filter((f) => existsSync(f));
    if (found.length === 0) return undefined;
    const now = Date.now();
    for (const file of found) {
      try {
        if (file === snapshot) {
          for (const e of JSON.parse(readFileSync(file, "utf8")) as unknown[]) {
            if (Array.isArray(e) && typeof e[0] === "string") this.add(e[0]);
          }
          continue;
        }
        // `<expiry ms|inf> <JSON key>`; the relay never released a pair, so every line is one.
        forEachLine(file, (line) => {
          const sp = line.indexOf(" ");
          if (sp < 1) return;
          const head = line.slice(0, sp);
          if (head !== "inf" && !(Number(head) > now)) return;
          let key: unknown;
          try {
            key = JSON.parse(line.slice(sp + 1));
          } catch {
            return; // torn by a crash mid-write
          }
          if (typeof key === "string") this.add(key);
        });
      } catch (err) {
        this.log.warn("ignoring an unreadable relay delivered memory of an earlier version", { file, error: (err as Error).message });
      }
    }
    this.#pendingBytes = 0;
    this.log.info("relay delivered memory migrated", { from: found.join(", "), to: this.file, pairs: this.#ring.size });
    return found;
  }

  /** Everything remembered into a fresh file, then append to it. */
  #rewrite(): void {
    const tmp = `${this.file}.tmp`;
    let fd: number | undefined;
    try {
      fd = openSync(tmp, "w", 0o600);
      writeSync(fd, `${MAGIC} ${hex8(this.#ring.seeds[0])} ${hex8(this.#ring.seeds[1])}\n`);
      const out = Buffer.allocUnsafe(LINE * WRITE_BATCH);
      let at = 0;
      for (const f of this.#ring.entries()) {
        putLine(out, at, f);
        at += LINE;
        if (at === out.length) {
          writeSync(fd, out, 0, at);
          at = 0;
        }
      }
      if (at) writeSync(fd, out, 0, at);
      closeSync(fd);
      fd = undefined;
      renameSync(tmp, this.file);
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = openSync(this.file, "a", 0o600);
      this.#lines = 0;
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      this.log.limited("relay-delivered", "error", "cannot write the relay's delivered memory", { file: this.file, error: (err as Error).message });
    }
  }
}

/** Calls `fn` with each complete line of `file` (numbered from 0), reading it in chunks. */
function forEachLine(file: string, fn: (line: string, n: number) => void): void {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    // Keeps a UTF-8 character split across two chunks whole (keys of the older format may hold any).
    const decoder = new StringDecoder("utf8");
    let carry = "";
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, 0, CHUNK, null);
      if (got === 0) break;
      const text = carry + decoder.write(buf.subarray(0, got));
      let start = 0;
      for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
        fn(text.slice(start, nl), n++);
        start = nl + 1;
      }
      carry = text.slice(start);
    }
    // A last line without its newline was torn by a crash: not taken.
  } finally {
    closeSync(fd);
  }
}
