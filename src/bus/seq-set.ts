/**
 * A set of delivered sequences (the WAN receiver's memory of one sender's frames), as ranges,
 * over a window below the highest. The Redis backend keeps the same structure in a script
 * (backends/redis/scripts.ts, APPEND_ONCE): the two must agree. Above the window a frame is new unless seen; below it, a frame is
 * a repeat (the sender never has more than wan.max_in_flight frames outstanding, far less than
 * the window). Gaps (a sender that skipped a sequence in a crash) cost one more range, no more.
 * Serialised small: `{"r":[[lo,hi],…]}`, stored with the delivery it records.
 */
export const SEQ_WINDOW = 1 << 16;

export class SeqMemory {
  /** Disjoint, sorted, non-adjacent inclusive ranges. */
  #ranges: [number, number][];

  constructor(ranges: [number, number][] = []) {
    this.#ranges = ranges;
  }

  static parse(text: string | undefined | null): SeqMemory {
    if (!text) return new SeqMemory();
    try {
      const r = (JSON.parse(text) as { r?: unknown }).r;
      if (!Array.isArray(r)) return new SeqMemory();
      const ok = r.filter((x): x is [number, number] => Array.isArray(x) && x.length === 2 && Number.isSafeInteger(x[0]) && Number.isSafeInteger(x[1]) && x[0] <= x[1]);
      return new SeqMemory(ok.sort((a, b) => a[0] - b[0]));
    } catch {
      return new SeqMemory();
    }
  }

  get highest(): number {
    return this.#ranges.length ? this.#ranges[this.#ranges.length - 1]![1] : 0;
  }

  /** True when `seq` was delivered, or is too far below the highest to be told apart. */
  seen(seq: number): boolean {
    if (this.#ranges.length === 0) return false;
    if (seq <= this.highest - SEQ_WINDOW) return true;
    for (let i = this.#ranges.length - 1; i >= 0; i--) {
      const [lo, hi] = this.#ranges[i]!;
      if (seq > hi) return false;
      if (seq >= lo) return true;
    }
    return false;
  }

  /** A copy with `seq` recorded (the caller stores it with the delivery, then adopts it). */
  with(seq: number): SeqMemory {
    const r = this.#ranges.map((x) => [x[0], x[1]] as [number, number]);
    let i = r.findIndex((x) => x[0] > seq);
    if (i < 0) i = r.length;
    const prev = r[i - 1];
    const next = r[i];
    if (prev && seq <= prev[1]) return new SeqMemory(r);
    if (prev && prev[1] + 1 === seq) {
      prev[1] = seq;
      if (next && next[0] === seq + 1) {
        prev[1] = next[1];
        r.splice(i, 1);
      }
    } else if (next && next[0] === seq + 1) next[0] = seq;
    else r.splice(i, 0, [seq, seq]);
    const floor = r[r.length - 1]![1] - SEQ_WINDOW;
    // Ranges wholly below the window are covered by the floor rule: forget them.
    return new SeqMemory(r.filter((x) => x[1] > floor));
  }

  toJSON(): { r: [number, number][] } {
    return { r: this.#ranges };
  }

  get ranges(): number {
    return this.#ranges.length;
  }
}
