/**
 * A bounded, first-in-first-out set of 64-bit keyed fingerprints of strings, in typed arrays.
 *
 * Why not a Map of the strings: the relay remembers up to a million (peer, event id) pairs,
 * and as strings in a Map with a ring of them each pair took ~130 bytes of heap (measured:
 * 126 MB of heap and 266 MB of RSS at 1,000,000 pairs), every one of them for the GC to mark.
 * Here a pair is 8 bytes in the ring plus 4 to 8 in the index, none of them a heap object.
 *
 * A fingerprint is two 32-bit MurmurHash3 lanes over the string's UTF-16 units, each from its
 * own random seed: two keys collide by chance with probability about 2^-64 per pair. This is no
 * cryptographic hash, and need not be one: a key is the sending peer's origin and an event id,
 * so a peer that crafted colliding ids could only make its own messages look delivered; another
 * peer's ids are random and unknown to it.
 */
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** MurmurHash3's finaliser: every input bit reaches every output bit. */
function fmix(h: number, n: number): number {
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Both lanes in one pass over the string (a block's mixing does not depend on the seed). */
function lanes(s: string, seed1: number, seed2: number): Fingerprint {
  let h1 = seed1 | 0;
  let h2 = seed2 | 0;
  const n = s.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 ^= k;
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    let k = s.charCodeAt(i);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h1 ^= k;
    h2 ^= k;
  }
  return { hi: fmix(h1, n), lo: fmix(h2, n) };
}

export interface Fingerprint {
  hi: number;
  lo: number;
}

export class FingerprintRing {
  // Fingerprints in the order they were added, oldest at #head; grows by doubling to capacity.
  #hi = new Uint32Array(16);
  #lo = new Uint32Array(16);
  #head = 0;
  #count = 0;
  /** Linear-probing index: slot + 1 in the ring, 0 for empty; at most half full. */
  #index = new Uint32Array(32);
  #mask = 31;

  constructor(
    readonly capacity: number,
    readonly seeds: readonly [number, number],
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 2 ** 30) throw new RangeError(`capacity ${capacity} is out of range`);
  }

  fingerprint(key: string): Fingerprint {
    return lanes(key, this.seeds[0], this.seeds[1]);
  }

  get size(): number {
    return this.#count;
  }

  has(f: Fingerprint): boolean {
    return this.#find(f.hi, f.lo) >= 0;
  }

  /** Adds `f` as the newest entry (false if it was there already); past capacity the oldest goes. */
  add(f: Fingerprint): boolean {
    if (this.#find(f.hi, f.lo) >= 0) return false;
    if (this.#count === this.capacity) this.#dropOldest();
    else if (this.#count === this.#hi.length) this.#grow();
    const slot = (this.#head + this.#count) % this.#hi.length;
    this.#hi[slot] = f.hi;
    this.#lo[slot] = f.lo;
    this.#count++;
    this.#insert(slot);
    return true;
  }

  /** Every entry, oldest first (for writing them out). */
  *entries(): IterableIterator<Fingerprint> {
    for (let i = 0; i < this.#count; i++) {
      const s = (this.#head + i) % this.#hi.length;
      yield { hi: this.#hi[s]!, lo: this.#lo[s]! };
    }
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

  #insert(slot: number): void {
    let i = this.#lo[slot]! & this.#mask;
    while (this.#index[i] !== 0) i = (i + 1) & this.#mask;
    this.#index[i] = slot + 1;
  }

  #dropOldest(): void {
    const at = this.#find(this.#hi[this.#head]!, this.#lo[this.#head]!);
    this.#head = (this.#head + 1) % this.#hi.length;
    this.#count--;
    // Backward-shift deletion: later entries of the probe run move up, so no tombstones.
    let hole = at;
    let j = at;
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

  /** Doubles the ring (oldest at 0 again) and rebuilds the index for the new slots. */
  #grow(): void {
    const cap = Math.min(this.capacity, this.#hi.length * 2);
    const hi = new Uint32Array(cap);
    const lo = new Uint32Array(cap);
    for (let i = 0; i < this.#count; i++) {
      const s = (this.#head + i) % this.#hi.length;
      hi[i] = this.#hi[s]!;
      lo[i] = this.#lo[s]!;
    }
    this.#hi = hi;
    this.#lo = lo;
    this.#head = 0;
    let size = 32;
    while (size < cap * 2) size *= 2;
    this.#index = new Uint32Array(size);
    this.#mask = size - 1;
    for (let i = 0; i < this.#count; i++) this.#insert(i);
  }
}
