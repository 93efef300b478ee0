import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import type { Logger } from "../log/index.ts";

/**
 * Remembers delivered event ids for as long as a replay could still pass the freshness check.
 * Bounded: past `maxEntries` the oldest id is forgotten; size it to the traffic of one
 * freshness window (bus.max_age_seconds + bus.clock_skew_seconds).
 *
 * A Map answers "seen?"; the order of claims is kept in a ring of its own, because dropping
 * the oldest entry of a Map by iterating from its front costs as much as the deleted entries
 * it has to skip (measured: 0.9 µs per claim below the bound, up to 110 µs at the bound).
 */
export class ReplayCache {
  /**
   * Id → its latest claim's slot in the ring. A slot (a small integer) rather than the expiry:
   * an expiry in ms is no small integer, so each entry held one more heap object (a boxed
   * number) for the GC to copy and mark, and the slot also tells a later claim from an
   * earlier one exactly.
   */
  readonly #seen = new Map<string, number>();
  // Claims in order, oldest at #head: a ring that grows by doubling up to maxEntries.
  #ids: (string | undefined)[] = new Array(16);
  #exps = new Float64Array(16);
  /** With claimAt only: the position (a stream entry id) each claim was made at. */
  #tags: (string | undefined)[] | null = null;
  #head = 0;
  #count = 0;

  constructor(readonly maxEntries: number) {}

  /** Records the id; false when it was already there and not expired (a replay). */
  claim(id: string, expiresAtMs: number, nowMs: number = Date.now()): boolean {
    return this.#claim(id, undefined, expiresAtMs, nowMs);
  }

  /**
   * For readers of one log that share this memory (a durable channel's tails): an id is taken at
   * the log position that first carried it, by every reader that comes to that position, and
   * refused at any other (a copy appended later). False for such a copy.
   */
  claimAt(id: string, at: string, expiresAtMs: number, nowMs: number = Date.now()): boolean {
    this.#tags ??= new Array(this.#ids.length);
    return this.#claim(id, at, expiresAtMs, nowMs);
  }

  /** A live earlier claim refuses this one, unless both were made at the same position `at`. */
  #claim(id: string, at: string | undefined, expiresAtMs: number, nowMs: number): boolean {
    const prev = this.#seen.get(id);
    if (prev !== undefined && this.#exps[prev]! > nowMs) return at !== undefined && this.#tags![prev] === at;
    const slot = this.#push(id, expiresAtMs);
    if (this.#tags) this.#tags[slot] = at;
    this.#seen.set(id, slot);
    // Expiries are close to claim order: drop a few expired ones from the front per claim,
    // which keeps up with the claims while bounding the work of each.
    for (let i = 0; i < 2 && this.#count > 0 && this.#exps[this.#head]! <= nowMs; i++) this.#dropOldest();
    return true;
  }

  /** Forgets an id, so a redelivery after a failed handler is not taken for a replay. */
  release(id: string): void {
    this.#seen.delete(id);
  }

  has(id: string, nowMs: number = Date.now()): boolean {
    const at = this.#seen.get(id);
    return at !== undefined && this.#exps[at]! > nowMs;
  }

  get size(): number {
    return this.#seen.size;
  }

  /** Appends a claim at the tail; returns its slot. */
  #push(id: string, exp: number): number {
    if (this.#count >= this.maxEntries) this.#dropOldest();
    else if (this.#count === this.#ids.length) this.#grow();
    const at = (this.#head + this.#count) % this.#ids.length;
    this.#ids[at] = id;
    this.#exps[at] = exp;
    this.#count++;
    return at;
  }

  #grow(): void {
    const cap = Math.min(this.maxEntries, this.#ids.length * 2);
    const ids: (string | undefined)[] = new Array(cap);
    const exps = new Float64Array(cap);
    const tags: (string | undefined)[] | null = this.#tags && new Array(cap);
    for (let i = 0; i < this.#count; i++) {
      const from = (this.#head + i) % this.#ids.length;
      const id = this.#ids[from]!;
      ids[i] = id;
      exps[i] = this.#exps[from]!;
      if (tags) tags[i] = this.#tags![from];
      // An id's latest claim comes after its earlier ones in this order, so it moves last.
      if (this.#seen.get(id) === from) this.#seen.set(id, i);
    }
    this.#ids = ids;
    this.#exps = exps;
    this.#tags = tags;
    this.#head = 0;
  }

  /** Drops the oldest claim; the id is forgotten unless it was claimed again since. */
  #dropOldest(): void {
    const id = this.#ids[this.#head]!;
    if (this.#seen.get(id) === this.#head) this.#seen.delete(id);
    this.#ids[this.#head] = undefined;
    if (this.#tags) this.#tags[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ids.length;
    this.#count--;
  }

  /** The unexpired ids, oldest first, for saving across a restart (Infinity is written as 0). */
  snapshot(nowMs: number = Date.now()): [string, number][] {
    const out: [string, number][] = [];
    for (let i = 0; i < this.#count; i++) {
      const at = (this.#head + i) % this.#ids.length;
      const exp = this.#exps[at]!;
      // Skip ring entries that were released or claimed again later (the later one is saved).
      if (exp > nowMs && this.#seen.get(this.#ids[at]!) === at) out.push([this.#ids[at]!, Number.isFinite(exp) ? exp : 0]);
    }
    return out;
  }
}

/** Snapshot entries (expiry 0 = never) back into a cache. */
function cacheRestore(cache: ReplayCache, entries: readonly [string, number][], nowMs: number = Date.now()): void {
  if (!Array.isArray(entries)) return;
  for (const e of entries) {
    if (!Array.isArray(e)) continue;
    const [id, exp] = e;
    const x = exp === 0 ? Number.POSITIVE_INFINITY : exp;
    if (typeof id === "string" && typeof x === "number" && x > nowMs) cache.claim(id, x, nowMs);
  }
}

/**
 * The replay memory on disk, so that a crash (kill -9 included) forgets no id a replay could
 * still use: every claim is appended as a line `<expiry ms|inf> <JSON id>` before the message
 * is handed on (one write per batch of admitted messages), a release as expiry 1. Reading it
 * back, the last line of an id wins. Once it has grown by `maxEntries` lines it is rewritten
 * from the unexpired claims (tmp + rename), so it stays within about twice the memory's size.
 * A torn last line (a crash mid-write) is skipped.
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
    if (legacyFile) this.#loadLegacy(legacyFile);
    this.#load();
    this.#rewrite();
  }

  #loadLegacy(file: string): void {
    try {
      cacheRestore(this.cache, JSON.parse(readFileSync(file, "utf8")) as [string, number][]);
      rmSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn("ignoring an unreadable replay memory file", { file, error: (err as Error).message });
    }
  }

  record(id: string, expiresAtMs: number): void {
    this.#pending += `${Number.isFinite(expiresAtMs) ? Math.ceil(expiresAtMs) : "inf"} ${JSON.stringify(id)}\n`;
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
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn("ignoring an unreadable replay memory file", { file: this.file, error: (err as Error).message });
      return;
    }
    const last = new Map<string, number>();
    for (const line of text.split("\n")) {
      const sp = line.indexOf(" ");
      if (sp < 1) continue;
      let id: unknown;
      try {
        id = JSON.parse(line.slice(sp + 1));
      } catch {
        continue; // torn by a crash mid-write
      }
      const head = line.slice(0, sp);
      const exp = head === "inf" ? Number.POSITIVE_INFINITY : Number(head);
      if (typeof id === "string" && !Number.isNaN(exp)) {
        last.delete(id); // keep claim order: a re-claimed id moves to the end
        last.set(id, exp);
      }
    }
    const now = Date.now();
    for (const [id, exp] of last) if (exp > now) this.cache.claim(id, exp, now);
  }

  /** The unexpired claims into a fresh file, then append to it. */
  #rewrite(): void {
    const tmp = `${this.file}.tmp`;
    try {
      let out = "";
      for (const [id, exp] of this.cache.snapshot()) out += `${exp === 0 ? "inf" : Math.ceil(exp)} ${JSON.stringify(id)}\n`;
      writeFileSync(tmp, out, { mode: 0o600 });
      renameSync(tmp, this.file);
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = openSync(this.file, "a", 0o600);
      this.#lines = 0;
    } catch (err) {
      this.log.limited("replay-journal", "error", "cannot write the replay memory", { file: this.file, error: (err as Error).message });
    }
  }
}
