import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import type { Logger } from "../log/index.ts";
import { fingerprint, fingerprintHex, parseFingerprintHex, randomSeeds, type Fingerprint, type Seeds } from "./fingerprint.ts";

/**
 * Remembers delivered event ids for as long as a replay could still pass the freshness check.
 * Bounded: past `maxEntries` the oldest claim is forgotten; size it to the traffic of one
 * freshness window (bus.max_age_seconds + bus.clock_skew_seconds).
 *
 * An id is kept as its 64-bit keyed fingerprint (fingerprint.ts), never as a string: claims
 * sit in a ring of typed arrays (fingerprint, expiry, oldest at #head), and a linear-probing
 * index maps a fingerprint to the ring slot of its latest claim. About 24 bytes a claim, none of
 * them a heap object for the GC to mark (as strings in a Map: ~110 bytes, and 11 MB of the
 * appliance's 26 MB of live heap after 100,000 messages).
 *
 * Why a ring of its own: dropping the oldest entry of a Map by iterating from its front costs
 * as much as the deleted entries it has to skip (measured: 0.9 µs per claim below the bound, up
 * to 110 µs at the bound).
 */
export class ReplayCache {
  #seeds: Seeds;
  // Claims in order, oldest at #head: a ring that grows by doubling up to maxEntries.
  #hi = new Uint32Array(16);
  #lo = new Uint32Array(16);
  #exps = new Float64Array(16);
  /** With claimAt only: the position (a stream entry id) each claim was made at. */
  #tags: (string | undefined)[] | null = null;
  #head = 0;
  #count = 0;
  /** Fingerprint → 1 + the ring slot of its latest claim; 0 is empty. At most half full. */
  #index = new Uint32Array(32);
  #mask = 31;
  /** Ids in the index (released ones and superseded claims are not). */
  #ids = 0;
  /** The last key fingerprinted: a claim and its journal record ask for the same one. */
  #lastKey: string | undefined;
  #lastPrint: Fingerprint = { hi: 0, lo: 0 };

  constructor(
    readonly maxEntries: number,
    seeds: Seeds = randomSeeds(),
  ) {
    this.#seeds = seeds;
  }

  get seeds(): Seeds {
    return this.#seeds;
  }

  /** Takes the seeds a journal was written with; only while nothing has been claimed. */
  adoptSeeds(seeds: Seeds): void {
    if (this.#count !== 0) throw new Error("the replay memory's seeds can change only while it is empty");
    this.#seeds = seeds;
    this.#lastKey = undefined;
  }

  fingerprint(id: string): Fingerprint {
    if (id !== this.#lastKey) {
      this.#lastPrint = fingerprint(id, this.#seeds);
      this.#lastKey = id;
    }
    return this.#lastPrint;
  }

  /** Records the id; false when it was already there and not expired (a replay). */
  claim(id: string, expiresAtMs: number, nowMs: number = Date.now()): boolean {
    return this.claimPrint(this.fingerprint(id), undefined, expiresAtMs, nowMs);
  }

  /**
   * For readers of one log that share this memory (a durable channel's tails): an id is taken at
   * the log position that first carried it, by every reader that comes to that position, and
   * refused at any other (a copy appended later). False for such a copy.
   */
  claimAt(id: string, at: string, expiresAtMs: number, nowMs: number = Date.now()): boolean {
    this.#tags ??= new Array(this.#hi.length);
    return this.claimPrint(this.fingerprint(id), at, expiresAtMs, nowMs);
  }

  /** claim/claimAt by fingerprint (a journal read back). A live earlier claim refuses this one, unless both were made at the same position `at`. */
  claimPrint(f: Fingerprint, at: string | undefined, expiresAtMs: number, nowMs: number): boolean {
    const { hi, lo } = f;
    const pos = this.#find(hi, lo);
    if (pos >= 0) {
      const prev = this.#index[pos]! - 1;
      if (this.#exps[prev]! > nowMs) return at !== undefined && this.#tags![prev] === at;
    }
    // A push that drops the oldest claim or grows the ring moves index entries: look again then.
    const moves = this.#count >= this.maxEntries || this.#count === this.#hi.length;
    const slot = this.#push(hi, lo, expiresAtMs);
    if (this.#tags) this.#tags[slot] = at;
    const now = moves ? this.#find(hi, lo) : pos;
    if (now >= 0) this.#index[now] = slot + 1;
    else {
      this.#insert(lo, slot);
      this.#ids++;
    }
    // Expiries are close to claim order: drop a few expired ones from the front per claim,
    // which keeps up with the claims while bounding the work of each.
    for (let i = 0; i < 2 && this.#count > 0 && this.#exps[this.#head]! <= nowMs; i++) this.#dropOldest();
    return true;
  }

  /** Forgets an id, so a redelivery after a failed handler is not taken for a replay. */
  release(id: string): void {
    this.releasePrint(this.fingerprint(id));
  }

  releasePrint(f: Fingerprint): void {
    const pos = this.#find(f.hi, f.lo);
    if (pos < 0) return;
    this.#delete(pos);
    this.#ids--;
  }

  has(id: string, nowMs: number = Date.now()): boolean {
    const f = this.fingerprint(id);
    const pos = this.#find(f.hi, f.lo);
    return pos >= 0 && this.#exps[this.#index[pos]! - 1]! > nowMs;
  }

  get size(): number {
    return this.#ids;
  }

  /** The unexpired claims, oldest first, for saving across a restart. */
  *live(nowMs: number = Date.now()): IterableIterator<{ f: Fingerprint; exp: number }> {
    for (let i = 0; i < this.#count; i++) {
      const s = (this.#head + i) % this.#hi.length;
      const exp = this.#exps[s]!;
      // Skip ring entries that were released or claimed again later (the later one is saved).
      if (exp > nowMs && this.#isLatest(s)) yield { f: { hi: this.#hi[s]!, lo: this.#lo[s]! }, exp };
    }
  }

  #isLatest(slot: number): boolean {
    const pos = this.#find(this.#hi[slot]!, this.#lo[slot]!);
    return pos >= 0 && this.#index[pos] === slot + 1;
  }

  /** Index position holding (hi, lo), or -1. */
  #find(hi: number, lo: number): number {
    let i = lo & this.#mask;
    for (;;) {
      const e = this.#index[i]!;
      if (e === 0) return -1;
      if (this.#lo[e - 1] === lo && this.#hi[e - 1] === hi) return i;
      i = (i + 1) & this.#mask;
    }
  }

  #insert(lo: number, slot: number): void {
    let i = lo & this.#mask;
    while (this.#index[i] !== 0) i = (i + 1) & this.#mask;
    this.#index[i] = slot + 1;
  }

  /** Backward-shift deletion: later entries of the probe run move up, so no tombstones. */
  #delete(pos: number): void {
    let hole = pos;
    let j = pos;
    for (;;) {
      j = (j + 1) & this.#mask;
      const e = this.#index[j]!;
      if (e === 0) break;
      const home = this.#lo[e - 1]! & this.#mask;
      // Move the entry at j into the hole unless its home lies cyclically after the hole.
      if (((j - home) & this.#mask) >= ((j - hole) & this.#mask)) {
        this.#index[hole] = e;
        hole = j;
      }
    }
    this.#index[hole] = 0;
  }

  /** Appends a claim at the tail; returns its slot. */
  #push(hi: number, lo: number, exp: number): number {
    if (this.#count >= this.maxEntries) this.#dropOldest();
    else if (this.#count === this.#hi.length) this.#grow();
    const at = (this.#head + this.#count) % this.#hi.length;
    this.#hi[at] = hi;
    this.#lo[at] = lo;
    this.#exps[at] = exp;
    this.#count++;
    return at;
  }

  /** Doubles the ring (oldest at 0 again) and rebuilds the index for the new slots. */
  #grow(): void {
    const cap = Math.min(this.maxEntries, this.#hi.length * 2);
    const hi = new Uint32Array(cap);
    const lo = new Uint32Array(cap);
    const exps = new Float64Array(cap);
    const tags: (string | undefined)[] | null = this.#tags && new Array(cap);
    const latest = new Uint8Array(this.#count);
    for (let i = 0; i < this.#count; i++) {
      const from = (this.#head + i) % this.#hi.length;
      hi[i] = this.#hi[from]!;
      lo[i] = this.#lo[from]!;
      exps[i] = this.#exps[from]!;
      if (tags) tags[i] = this.#tags![from];
      latest[i] = this.#isLatest(from) ? 1 : 0;
    }
    this.#hi = hi;
    this.#lo = lo;
    this.#exps = exps;
    this.#tags = tags;
    this.#head = 0;
    let size = 32;
    while (size < cap * 2) size *= 2;
    this.#index = new Uint32Array(size);
    this.#mask = size - 1;
    for (let i = 0; i < this.#count; i++) if (latest[i]) this.#insert(lo[i]!, i);
  }

  /** Drops the oldest claim; the id is forgotten unless it was claimed again since. */
  #dropOldest(): void {
    const h = this.#head;
    const pos = this.#find(this.#hi[h]!, this.#lo[h]!);
    if (pos >= 0 && this.#index[pos] === h + 1) {
      this.#delete(pos);
      this.#ids--;
    }
    if (this.#tags) this.#tags[h] = undefined;
    this.#head = (h + 1) % this.#hi.length;
    this.#count--;
  }
}

const MAGIC = "pilox-mesh replay 2";
const CHUNK = 1 << 20;
const LINE = /^(inf|\d{1,16}) ([0-9a-f]{16})$/;

/**
 * The replay memory on disk, so that a crash (kill -9 included) forgets no id a replay could
 * still use. The file starts with `pilox-mesh replay 2 <seed hex> <seed hex>` (the memory's
 * fingerprint seeds), then every claim is appended as a line `<expiry ms|inf> <fingerprint hex>`
 * before the message is handed on (one write per batch of admitted messages), a release as
 * expiry 1. Reading it back, the last line of an id wins. Once it has grown by `maxEntries`
 * lines it is rewritten from the unexpired claims (tmp + rename), so it stays within about
 * twice the memory's size. A torn last line (a crash mid-write) is skipped. The file is read
 * in chunks and claimed line by line: loading takes no memory beyond the claims themselves.
 *
 * A file of the earlier format (no first line: `<expiry> <JSON id>` lines, state format 2) is
 * read once, and rewritten in this one.
 */
export class ReplayJournal {
  #fd: number | undefined;
  #pending = "";
  #lines = 0;

  /** `legacyFile`: the JSON snapshot earlier versions saved at a clean stop, read once and removed. */
  constructor(
    readonly file: string,
    private readonly cache: ReplayCache,
    private readonly log: Logger,
    legacyFile?: string,
  ) {
    this.#load();
    if (legacyFile) this.#loadLegacy(legacyFile);
    this.#rewrite();
  }

  #loadLegacy(file: string): void {
    try {
      const now = Date.now();
      for (const e of JSON.parse(readFileSync(file, "utf8")) as unknown[]) {
        if (!Array.isArray(e)) continue;
        const [id, exp] = e as [unknown, unknown];
        const x = exp === 0 ? Number.POSITIVE_INFINITY : exp;
        if (typeof id === "string" && typeof x === "number" && x > now) this.cache.claim(id, x, now);
      }
      rmSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn("ignoring an unreadable replay memory file", { file, error: (err as Error).message });
    }
  }

  record(id: string, expiresAtMs: number): void {
    this.#pending += `${Number.isFinite(expiresAtMs) ? Math.ceil(expiresAtMs) : "inf"} ${fingerprintHex(this.cache.fingerprint(id))}\n`;
    this.#lines++;
  }

  /** Writes what was recorded since the last flush; compacts once the file has grown enough. */
  flush(): void {
    if (this.#pending === "" || this.#fd === undefined) return;
    const text = this.#pending;
    this.#pending = "";
    try {
      writeSync(this.#fd, text);
    } catch (err) {
      this.log.limited("replay-journal", "error", "cannot write the replay memory", { file: this.file, error: (err as Error).message });
    }
    if (this.#lines > Math.max(this.cache.maxEntries, 1_000)) this.#rewrite();
  }

  close(): void {
    this.flush();
    this.#rewrite();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #load(): void {
    if (!existsSync(this.file)) return;
    const now = Date.now();
    let format: "fingerprints" | "ids" | undefined;
    try {
      forEachLine(this.file, (line, n) => {
        if (n === 0) {
          const m = /^pilox-mesh replay 2 ([0-9a-f]{8}) ([0-9a-f]{8})$/.exec(line);
          format = m ? "fingerprints" : "ids";
          if (m) return this.cache.adoptSeeds([parseInt(m[1]!, 16) >>> 0, parseInt(m[2]!, 16) >>> 0]);
        }
        if (format === "fingerprints") {
          const m = LINE.exec(line);
          if (m) this.#restore(parseFingerprintHex(m[2]!), m[1] === "inf" ? Number.POSITIVE_INFINITY : Number(m[1]), now);
          return;
        }
        const sp = line.indexOf(" ");
        if (sp < 1) return;
        let id: unknown;
        try {
          id = JSON.parse(line.slice(sp + 1));
        } catch {
          return; // torn by a crash mid-write
        }
        const head = line.slice(0, sp);
        const exp = head === "inf" ? Number.POSITIVE_INFINITY : Number(head);
        if (typeof id === "string" && !Number.isNaN(exp)) this.#restore(this.cache.fingerprint(id), exp, now);
      });
    } catch (err) {
      this.log.warn("ignoring an unreadable replay memory file", { file: this.file, error: (err as Error).message });
      return;
    }
    if (format === "ids") this.log.info("replay memory rewritten in its current format", { file: this.file, ids: this.cache.size });
  }

  /** A line read back: it replaces what an earlier line said of the same id (and moves it last). */
  #restore(f: Fingerprint, exp: number, now: number): void {
    this.cache.releasePrint(f);
    if (exp > now) this.cache.claimPrint(f, undefined, exp, now);
  }

  /** The unexpired claims into a fresh file, then append to it. */
  #rewrite(): void {
    const tmp = `${this.file}.tmp`;
    let fd: number | undefined;
    try {
      fd = openSync(tmp, "w", 0o600);
      const [s1, s2] = this.cache.seeds;
      let out = `${MAGIC} ${s1.toString(16).padStart(8, "0")} ${s2.toString(16).padStart(8, "0")}\n`;
      for (const { f, exp } of this.cache.live()) {
        out += `${Number.isFinite(exp) ? Math.ceil(exp) : "inf"} ${fingerprintHex(f)}\n`;
        if (out.length >= CHUNK) {
          writeSync(fd, out);
          out = "";
        }
      }
      if (out) writeSync(fd, out);
      closeSync(fd);
      fd = undefined;
      renameSync(tmp, this.file);
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = openSync(this.file, "a", 0o600);
      this.#lines = 0;
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      this.log.limited("replay-journal", "error", "cannot write the replay memory", { file: this.file, error: (err as Error).message });
    }
  }
}

/** Calls `fn` with each complete line of `file` (numbered from 0), reading it in chunks. */
function forEachLine(file: string, fn: (line: string, n: number) => void): void {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    // Keeps a UTF-8 character split across two chunks whole (ids of the older format may hold any).
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
