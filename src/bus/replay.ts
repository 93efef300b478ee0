import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { Logger } from "../log/index.ts";

/**
 * Remembers delivered event ids for as long as a replay could still pass the freshness check.
 * Bounded: past `maxEntries` the oldest id is forgotten (unextended v1 messages have no send
 * time, so for them the bound is the only horizon; size it to the traffic of one window).
 *
 * A Map answers "seen?"; the order of claims is kept in a ring of its own, because dropping
 * the oldest entry of a Map by iterating from its front costs as much as the deleted entries
 * it has to skip (measured: 0.9 µs per claim below the bound, up to 110 µs at the bound).
 */
export class ReplayCache {
  readonly #seen = new Map<string, number>();
  // Claims in order, oldest at #head: a ring that grows by doubling up to maxEntries.
  #ids: (string | undefined)[] = new Array(16);
  #exps = new Float64Array(16);
  #head = 0;
  #count = 0;

  constructor(readonly maxEntries: number) {}

  /** Records the id; false when it was already there and not expired (a replay). */
  claim(id: string, expiresAtMs: number, nowMs: number = Date.now()): boolean {
    const prev = this.#seen.get(id);
    if (prev !== undefined && prev > nowMs) return false;
    this.#seen.set(id, expiresAtMs);
    this.#push(id, expiresAtMs);
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
    const exp = this.#seen.get(id);
    return exp !== undefined && exp > nowMs;
  }

  get size(): number {
    return this.#seen.size;
  }

  #push(id: string, exp: number): void {
    if (this.#count >= this.maxEntries) this.#dropOldest();
    else if (this.#count === this.#ids.length) this.#grow();
    const at = (this.#head + this.#count) % this.#ids.length;
    this.#ids[at] = id;
    this.#exps[at] = exp;
    this.#count++;
  }

  #grow(): void {
    const cap = Math.min(this.maxEntries, this.#ids.length * 2);
    const ids: (string | undefined)[] = new Array(cap);
    const exps = new Float64Array(cap);
    for (let i = 0; i < this.#count; i++) {
      const from = (this.#head + i) % this.#ids.length;
      ids[i] = this.#ids[from];
      exps[i] = this.#exps[from]!;
    }
    this.#ids = ids;
    this.#exps = exps;
    this.#head = 0;
  }

  /**
   * Drops the oldest claim; the id is forgotten unless it was claimed again since (told apart
   * by the expiry: a re-claim with the very same expiry is forgotten with the older entry).
   */
  #dropOldest(): void {
    const id = this.#ids[this.#head]!;
    if (this.#seen.get(id) === this.#exps[this.#head]) this.#seen.delete(id);
    this.#ids[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ids.length;
    this.#count--;
  }

  /** The unexpired ids, oldest first, for saving across a restart (Infinity is written as 0). */
  snapshot(nowMs: number = Date.now()): [string, number][] {
    const out: [string, number][] = [];
    for (let i = 0; i < this.#count; i++) {
      const at = (this.#head + i) % this.#ids.length;
      const id = this.#ids[at]!;
      const exp = this.#exps[at]!;
      // Skip ring entries that were released or claimed again later (the later one is saved).
      if (exp > nowMs && this.#seen.get(id) === exp) out.push([id, Number.isFinite(exp) ? exp : 0]);
    }
    return out;
  }

  restore(entries: readonly [string, number][], nowMs: number = Date.now()): void {
    for (const [id, exp] of entries) {
      const e = exp === 0 ? Number.POSITIVE_INFINITY : exp;
      if (typeof id === "string" && typeof e === "number" && e > nowMs) this.claim(id, e, nowMs);
    }
  }
}

/** Reads a saved replay memory (a missing or unreadable file just starts empty). */
export function loadReplayFile(file: string, cache: ReplayCache, log: Logger): void {
  if (!existsSync(file)) return;
  try {
    cache.restore(JSON.parse(readFileSync(file, "utf8")) as [string, number][]);
  } catch (err) {
    log.warn("ignoring an unreadable replay memory file", { file, error: (err as Error).message });
  }
}

export function saveReplayFile(file: string, cache: ReplayCache, log: Logger): void {
  try {
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache.snapshot()), { mode: 0o600 });
    renameSync(tmp, file);
  } catch (err) {
    log.warn("cannot save the replay memory", { file, error: (err as Error).message });
  }
}
