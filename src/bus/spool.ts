/**
 * The on-disk spool for durable publishes made while Redis is unreachable. Entries are JSON
 * lines, appended before the publish is acknowledged, flushed in order when Redis returns.
 * Only counters, and at most CACHE_BYTES of the latest lines, live in memory (a full spool
 * must not cost the heap its size); flushing reads the file from a persisted offset, or those
 * lines while the reader keeps up with the writer.
 * Bounded by bytes: at the bound a publish is refused (503 spool_full), never dropped.
 * A crash during a flush resends a few entries; receivers drop them by event id.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface SpoolEntry {
  channel: string;
  /** The message with its meshMeta; it is sealed when it leaves the spool. */
  message: Record<string, unknown>;
  /** What meshExt must carry when it is sealed: the peer it came from, its trace context. */
  origin?: string;
  trace?: { traceparent: string; tracestate?: string };
  /** Sealed in the plain Pilox v1 form. */
  v1?: true;
}

/** Lines appended to a spool but not written yet (Spool.batch), with their UTF-8 sizes. */
export interface SpoolBatch {
  lines: string[];
  sizes: number[];
  bytes: number;
}

/**
 * Appends `text` (`bytes` long in UTF-8) to `fd`, opened for appending to `file`, whole or not
 * at all: after a failed or short write (disk full) the file is cut back to `sizeBefore`.
 */
export function appendWhole(fd: number, file: string, text: string, bytes: number, sizeBefore: number): void {
  try {
    const written = writeSync(fd, text);
    if (written !== bytes) throw new Error(`short write to ${file} (${written} of ${bytes} bytes)`);
  } catch (err) {
    try {
      ftruncateSync(fd, sizeBefore);
    } catch {
      /* the next start cuts a torn last line */
    }
    throw err;
  }
}

export class SpoolFullError extends Error {
  override name = "SpoolFullError";
}

/** How much of the file one peek reads at most. */
const READ_CHUNK = 1024 * 1024;
/** The least one peek reads: a few entries of any usual size. */
const READ_MIN = 16 * 1024;

/** Recently written lines kept in memory for the next peeks, at most this many bytes. */
const CACHE_BYTES = 4 * 1024 * 1024;

/** An emptied spool (or frame log) is truncated once its spent head is at least this long. */
export const TRUNCATE_BYTES = 1024 * 1024;

/** A line at the head of the spool, as written, with its size on disk (newline included). */
export interface SpoolLine {
  text: string;
  bytes: number;
  /**
   * Written by this process (JSON.stringify of an entry), so well-formed: a reader need not
   * parse it to check it. A line read back from disk is not.
   */
  trusted: boolean;
}

export class Spool {
  readonly #file: string;
  readonly #offsetFile: string;
  #count = 0;
  #bytes = 0;
  /** Byte offset in the file of the first entry not yet flushed. */
  #offset = 0;
  #fd: number | undefined;
  /** Kept open for peeks (a truncation keeps the inode, so it stays valid). */
  #readFd: number | undefined;
  #offsetFd: number | undefined;
  /** Lengths (bytes) of the entries the last peek returned, for drop(). */
  #peeked: number[] = [];
  /** Bytes held in batches (see batch()), counted against the bound. */
  #deferredBytes = 0;
  /**
   * The lines this process wrote from file offset #cacheStart on, without their newlines, and
   * their sizes: a sender keeping up takes them from here instead of reading and decoding the
   * file. It only grows while it ends where the file ends, up to CACHE_BYTES.
   */
  #cache: (string | undefined)[] = [];
  #cacheSizes: number[] = [];
  /** Index in #cache of the line at #cacheStart (the ones before it are spent). */
  #cacheHead = 0;
  #cacheStart = 0;
  #cacheBytes = 0;

  /**
   * `alsoQueued`: bytes held elsewhere for the same destination (a WAN sender's frames not yet
   * acknowledged), counted against the same bound: one bound covers all that waits for a peer.
   */
  constructor(
    dir: string,
    readonly maxBytes: number,
    private readonly alsoQueued: () => number = () => 0,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#file = join(dir, "durable.jsonl");
    this.#offsetFile = join(dir, "durable.offset");
    this.#load();
  }

  #load(): void {
    if (!existsSync(this.#file)) return;
    const buf = readFileSync(this.#file);
    this.#offset = existsSync(this.#offsetFile) ? Number(readFileSync(this.#offsetFile, "utf8").trim()) || 0 : 0;
    if (this.#offset > buf.length) this.#offset = 0;
    // Count complete lines; a torn last line was never acknowledged, so it is cut off.
    let pos = this.#offset;
    for (;;) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) break;
      this.#count++;
      pos = nl + 1;
    }
    this.#bytes = pos - this.#offset;
    if (pos < buf.length) writeFileSync(this.#file, buf.subarray(0, pos), { mode: 0o600 });
  }

  get size(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Adds an entry at the tail, on disk when this returns; or, given a `batch`, kept there until
   * flush(batch) writes the batch's lines at once (a consumer's batch: one write, not one per
   * entry). A batched entry is not in the spool (size, peeks) before then.
   */
  append(entry: SpoolEntry, batch?: SpoolBatch): void {
    const line = JSON.stringify(entry) + "\n";
    const bytes = Buffer.byteLength(line);
    if (this.#bytes + this.#deferredBytes + this.alsoQueued() + bytes > this.maxBytes) throw new SpoolFullError(`spool is full (${this.maxBytes} bytes)`);
    if (batch) {
      batch.lines.push(line);
      batch.sizes.push(bytes);
      batch.bytes += bytes;
      this.#deferredBytes += bytes;
      return;
    }
    this.#write([line], [bytes], line, bytes);
  }

  /** A writer's own batch of deferred lines (each consumer has one: a failed flush drops only its lines). */
  batch(): SpoolBatch {
    return { lines: [], sizes: [], bytes: 0 };
  }

  /** Writes a batch's lines; returns how many. On failure they are dropped and it throws. */
  flush(batch: SpoolBatch): number {
    const n = batch.lines.length;
    if (n === 0) return 0;
    const { lines, sizes, bytes } = batch;
    const text = n === 1 ? lines[0]! : lines.join("");
    batch.lines = [];
    batch.sizes = [];
    batch.bytes = 0;
    this.#deferredBytes -= bytes;
    this.#write(lines, sizes, text, bytes);
    return n;
  }

  /** `lines` (each with its newline, `sizes` bytes each) joined are `text`, `bytes` long. */
  #write(lines: readonly string[], sizes: readonly number[], text: string, bytes: number): void {
    // One descriptor kept open for appends (O_APPEND: still the end after a truncation): an
    // open and a close per entry cost four times the write itself.
    this.#fd ??= openSync(this.#file, "a", 0o600);
    const end = this.#offset + this.#bytes;
    appendWhole(this.#fd, this.#file, text, bytes, end);
    this.#count += lines.length;
    this.#bytes += bytes;
    if (this.#cacheHead === this.#cache.length) this.#clearCache(end);
    if (this.#cacheStart + this.#cacheBytes === end && this.#cacheBytes + bytes <= CACHE_BYTES) {
      for (const l of lines) this.#cache.push(l.slice(0, -1));
      this.#cacheSizes.push(...sizes);
      this.#cacheBytes += bytes;
    }
  }

  /**
   * Up to `n` entries from the head, in order, one per line: a corrupt line comes back as
   * null (it is dropped with its batch rather than block the spool).
   */
  peek(n: number): (SpoolEntry | null)[] {
    return this.peekLines(n).map((l) => parseEntry(l.text));
  }

  /**
   * Up to `n` lines from the head as written (for a sender whose wire form is the line
   * itself, so it need not parse and serialise each entry again).
   */
  peekLines(n: number): SpoolLine[] {
    this.#peeked = [];
    if (this.#count === 0 || n <= 0) return [];
    if (this.#cacheHead < this.#cache.length && this.#cacheStart === this.#offset) {
      const k = Math.min(n, this.#cache.length - this.#cacheHead);
      const out: SpoolLine[] = new Array<SpoolLine>(k);
      for (let i = 0; i < k; i++) {
        const size = this.#cacheSizes[this.#cacheHead + i]!;
        out[i] = { text: this.#cache[this.#cacheHead + i]!, bytes: size, trusted: true };
        this.#peeked.push(size);
      }
      return out;
    }
    // Read about what `n` average lines take, not a whole chunk: a busy queue holds megabytes
    // and a frame wants a few dozen lines.
    const avg = this.#bytes / this.#count;
    let want = Math.min(this.#bytes, READ_CHUNK, Math.max(READ_MIN, Math.ceil(avg * n * 1.25)));
    for (;;) {
      const buf = Buffer.allocUnsafe(want);
      this.#readFd ??= openSync(this.#file, "r");
      const got = readSync(this.#readFd, buf, 0, want, this.#offset);
      const out: SpoolLine[] = [];
      let pos = 0;
      while (out.length < n) {
        const nl = buf.indexOf(10, pos);
        if (nl < 0 || nl >= got) break;
        this.#peeked.push(nl + 1 - pos);
        out.push({ text: buf.toString("utf8", pos, nl), bytes: nl + 1 - pos, trusted: false });
        pos = nl + 1;
      }
      if (out.length > 0) return out;
      // Not even one whole line: read more, and past a chunk, exactly that line.
      if (want >= Math.min(this.#bytes, READ_CHUNK)) return this.#peekLong();
      want = Math.min(this.#bytes, READ_CHUNK);
    }
  }

  #peekLong(): SpoolLine[] {
    const rest = readFileSync(this.#file).subarray(this.#offset);
    const nl = rest.indexOf(10);
    this.#peeked = [nl + 1];
    return [{ text: rest.toString("utf8", 0, nl), bytes: nl + 1, trusted: false }];
  }

  /** Releases the append descriptor (the spool stays on disk; a later append reopens it). */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    if (this.#readFd !== undefined) closeSync(this.#readFd);
    if (this.#offsetFd !== undefined) closeSync(this.#offsetFd);
    this.#fd = undefined;
    this.#readFd = undefined;
    this.#offsetFd = undefined;
  }

  /** Marks the first `lines` lines of the last peek as sent. */
  drop(lines: number): void {
    for (let i = 0; i < lines && this.#count > 0; i++) {
      const len = this.#peeked.shift() ?? 0;
      this.#offset += len;
      this.#bytes -= len;
      this.#count--;
    }
    // What the head moved past leaves the cache.
    while (this.#cacheHead < this.#cache.length && this.#cacheStart < this.#offset) {
      // Released at once: a line kept until the array is compacted would outlive young GCs
      // and be copied into the old generation for nothing.
      this.#cache[this.#cacheHead] = undefined;
      const size = this.#cacheSizes[this.#cacheHead++]!;
      this.#cacheStart += size;
      this.#cacheBytes -= size;
    }
    if (this.#cacheHead === this.#cache.length) this.#clearCache(this.#cacheStart);
    else if (this.#cacheHead > 1024 && this.#cacheHead * 2 > this.#cache.length) {
      this.#cache = this.#cache.slice(this.#cacheHead);
      this.#cacheSizes = this.#cacheSizes.slice(this.#cacheHead);
      this.#cacheHead = 0;
    }
    if (this.#count === 0) {
      this.#bytes = 0;
      // Emptied: cut back once the spent head is worth it, not on every drop (a truncation
      // costs a journalled metadata change; a quiet link empties its queue per message).
      if (this.#offset >= TRUNCATE_BYTES) {
        this.#offset = 0;
        this.#fd ??= openSync(this.#file, "a", 0o600);
        ftruncateSync(this.#fd, 0);
      }
      this.#clearCache(this.#offset);
    }
    // Rewritten in place at a fixed width: one write, no temporary file and rename per drop
    // (measured: those were most of a busy sender's time). A process killed around it leaves
    // the old offset or the new one; a stale offset only resends, and receivers drop repeats.
    this.#offsetFd ??= openSync(this.#offsetFile, existsSync(this.#offsetFile) ? "r+" : "w+", 0o600);
    writeSync(this.#offsetFd, String(this.#offset).padStart(20, " "), 0);
  }

  #clearCache(at: number): void {
    this.#cache = [];
    this.#cacheSizes = [];
    this.#cacheHead = 0;
    this.#cacheStart = at;
    this.#cacheBytes = 0;
  }
}

/** A spool line's entry, or null when the line is not one (corrupt on disk). */
export function parseEntry(text: string): SpoolEntry | null {
  try {
    const e = JSON.parse(text) as SpoolEntry;
    return typeof e?.channel === "string" && e.message && typeof e.message === "object" ? e : null;
  } catch {
    return null;
  }
}
