/**
 * One blocking read for all the stream readers with nothing left to read: a reader takes a seat
 * here, and one XREADGROUP … BLOCK (the durable consumers of one group member) or XREAD … BLOCK
 * (the tails, resumable SSE subscribers) over all seated streams hands each its new entries.
 * A blocked read per reader cost a connection each and a timed-out command per reader every
 * block_ms (measured: 1,000 durable channels, 1,003 connections and 200 commands/s with no
 * traffic); this costs one of each per waiter, per hash slot on a Redis Cluster, which refuses a
 * read across slots (a hash tag in stream_prefix puts every stream in one).
 *
 * A seat taken while the read is blocked without its stream (or, for a tail, further back in it)
 * interrupts the read (CLIENT UNBLOCK over the shared connection), so the next read includes it.
 * A group's waiter also takes over, for all its streams at once, entries another member of the
 * group left idle (XAUTOCLAIM, one pipelined round trip every claim_idle/2).
 */
import { setImmediate } from "node:timers";
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "../../../log/index.ts";
import { masterOf, type RedisClient } from "../../../redis/index.ts";
import { abortable } from "../abortable.ts";
import { entryBefore, sleep } from "../backend.ts";
import { streamsEntries, type Entries } from "./replies.ts";

/** Whose reads: one member of a consumer group, or tails (each seat at its own position). */
export type WaiterKind = { kind: "group"; group: string; consumer: string; claimIdleMs: number } | { kind: "tail" };

export type StreamWaiterSetup = WaiterKind & {
  batch: number;
  blockMs: number;
  cluster: boolean;
  /** Shared and never blocked: the interrupts and the claims go over it. */
  cmd: RedisClient;
  /** The waiter's own connection (a blocked read holds it), made at its first read. */
  connect: () => RedisClient;
  release: (r: RedisClient) => Promise<void>;
  log: Logger;
};

/** Without CLIENT UNBLOCK (an ACL may refuse it), a stream seated mid-read waits at most this. */
const FALLBACK_BLOCK_MS = 250;
/** Streams per pipelined round of claims. */
const CLAIM_CHUNK = 500;

/** One reader's place: entries for it arrive through `next`. */
export class Seat {
  wait: { resolve: (e: Entries) => void; reject: (err: Error) => void } | null = null;
  /** A group member's entries read or claimed while it was busy: its own pending ones, handed over next. */
  inbox: Entries = [];
  /** A tail's position: it is handed entries after this id. */
  cursor = "0-0";
  constructor(readonly key: string) {}
}

interface Flight {
  /** Stream → the position read from (">" for a group). */
  keys: Map<string, string>;
  first: string;
  /** The id of the connection the read blocks, for CLIENT UNBLOCK. */
  id: Promise<number | null>;
  interrupting: boolean;
}

export class StreamWaiter {
  readonly #s: StreamWaiterSetup;
  readonly #seats = new Map<string, Seat[]>();
  readonly #abort = abortable();
  readonly #claimTimer: ReturnType<typeof setInterval> | undefined;
  #conn: RedisClient | null = null;
  #flight: Flight | null = null;
  #running = false;
  #claiming = false;
  #closed = false;
  #unblockRefused = false;

  constructor(setup: StreamWaiterSetup) {
    this.#s = setup;
    if (setup.kind === "group") {
      this.#claimTimer = setInterval(() => void this.#claimAll(), Math.max(setup.claimIdleMs / 2, 50));
      this.#claimTimer.unref?.();
    }
  }

  /** Readers seated here (busy or waiting). */
  get size(): number {
    let n = 0;
    for (const list of this.#seats.values()) n += list.length;
    return n;
  }

  join(key: string): Seat {
    const seat = new Seat(key);
    const list = this.#seats.get(key);
    if (list) list.push(seat);
    else this.#seats.set(key, [seat]);
    return seat;
  }

  /** Its wait ends with no entries. What was read for it stays pending in the group, for its next start. */
  leave(seat: Seat): void {
    const list = this.#seats.get(seat.key);
    if (list) {
      const i = list.indexOf(seat);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#seats.delete(seat.key);
    }
    this.#resolve(seat, []);
  }

  /**
   * The seat's next entries: new ones (for a tail, after `seat.cursor`), or ones taken over from
   * an idle member. Rejects when the read fails (the reader recovers, a vanished group included,
   * and waits again).
   */
  next(seat: Seat): Promise<Entries> {
    if (seat.inbox.length) {
      const e = seat.inbox;
      seat.inbox = [];
      return Promise.resolve(e);
    }
    return new Promise((resolve, reject) => {
      seat.wait = { resolve, reject };
      const f = this.#flight;
      if (!this.#running) void this.#run();
      else if (f && !this.#covers(f, seat)) void this.#interrupt(f);
    });
  }

  /** Does the read in flight serve this seat: its stream, and for a tail, from no later than its position? */
  #covers(f: Flight, seat: Seat): boolean {
    const from = f.keys.get(seat.key);
    return from !== undefined && (this.#s.kind === "group" || !entryBefore(seat.cursor, from));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#claimTimer);
    this.#abort.abort();
    for (const list of this.#seats.values()) for (const seat of list) this.#resolve(seat, []);
    if (this.#conn) await this.#s.release(this.#conn);
  }

  #resolve(seat: Seat, entries: Entries): void {
    const w = seat.wait;
    seat.wait = null;
    w?.resolve(entries);
  }

  /** The streams with a waiting seat, each from where its furthest-back waiting seat is. */
  #waiting(): Map<string, string> {
    const keys = new Map<string, string>();
    for (const [key, list] of this.#seats) {
      for (const seat of list) {
        if (!seat.wait) continue;
        const from = this.#s.kind === "group" ? ">" : seat.cursor;
        const had = keys.get(key);
        if (had === undefined || (from !== ">" && entryBefore(from, had))) keys.set(key, from);
      }
    }
    return keys;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (!this.#closed) {
        // The consumers that run out of entries in this turn share one read.
        await new Promise<void>((done) => setImmediate(done));
        const keys = this.#waiting();
        if (keys.size === 0) return;
        await this.#readOnce(keys);
      }
    } finally {
      this.#running = false;
    }
  }

  async #readOnce(keys: Map<string, string>): Promise<void> {
    const s = this.#s;
    const conn = (this.#conn ??= s.connect());
    const first = keys.keys().next().value!;
    // CLIENT ID goes out just before the read, on the connection the read will hold.
    const node = this.#unblockRefused ? undefined : s.cluster ? masterOf(conn as Cluster, first) : (conn as Redis);
    const flight: Flight = { keys, first, id: node ? node.call("CLIENT", "ID").then(Number, (err: Error) => this.#refused(err)) : Promise.resolve(null), interrupting: false };
    this.#flight = flight;
    const block = this.#unblockRefused ? Math.min(s.blockMs, FALLBACK_BLOCK_MS) : s.blockMs;
    const streams = ["STREAMS", ...keys.keys(), ...keys.values()];
    const read = s.kind === "group" ? conn.call("XREADGROUP", "GROUP", s.group, s.consumer, "COUNT", s.batch, "BLOCK", block, ...streams) : conn.call("XREAD", "COUNT", s.batch, "BLOCK", block, ...streams);
    try {
      const reply = await this.#abort.run(read);
      for (const [key, entries] of streamsEntries(reply)) if (entries.length) this.#deliver(key, entries);
    } catch (err) {
      if (this.#closed) return;
      for (const key of keys.keys()) {
        for (const seat of this.#seats.get(key) ?? []) {
          const w = seat.wait;
          seat.wait = null;
          w?.reject(err as Error);
        }
      }
    } finally {
      if (this.#flight === flight) this.#flight = null;
    }
  }

  #deliver(key: string, entries: Entries): void {
    const list = this.#seats.get(key);
    // Its reader left: a group's entries stay pending for this member, read from its history at its next start.
    if (!list?.length) return;
    if (this.#s.kind === "tail") {
      // Every waiting tail of the stream, each from its own position (a busy one reads for itself).
      for (const seat of list) {
        if (!seat.wait) continue;
        const after = entries.filter(([id]) => entryBefore(seat.cursor, id));
        if (after.length) this.#resolve(seat, after);
      }
      return;
    }
    const seat = list.find((x) => x.wait) ?? list[0]!;
    if (seat.wait) this.#resolve(seat, entries);
    else seat.inbox.push(...entries);
  }

  /** Ends a blocked read early, as if it timed out, so the next one includes the new seats. */
  async #interrupt(f: Flight): Promise<void> {
    if (f.interrupting) return;
    f.interrupting = true;
    const id = await f.id;
    if (id === null) return;
    // The read may not have reached the server yet: try again until it blocks or returns.
    for (let i = 0; this.#flight === f && !this.#closed && i < 40; i++) {
      const node = this.#s.cluster ? masterOf(this.#s.cmd as Cluster, f.first) : (this.#s.cmd as Redis);
      if (!node) return;
      try {
        if (Number(await node.call("CLIENT", "UNBLOCK", id, "TIMEOUT")) === 1) return;
      } catch (err) {
        this.#refused(err as Error);
        return;
      }
      await sleep(Math.min(2 ** i, 50));
    }
  }

  /** An ACL without CLIENT ID or CLIENT UNBLOCK: shorter blocked reads from now on. */
  #refused(err: Error): null {
    if (/NOPERM|unknown (sub)?command/i.test(err.message) && !this.#unblockRefused) {
      this.#unblockRefused = true;
      this.#s.log.warn(`redis refuses CLIENT ID or CLIENT UNBLOCK: a durable channel that goes idle may wait up to ${FALLBACK_BLOCK_MS} ms for its next message; grant the bus's user +client|id and +client|unblock`, { error: err.message });
    }
    return null;
  }

  /** Entries another member left unacknowledged for claim_idle, taken over for every stream here. */
  async #claimAll(): Promise<void> {
    const s = this.#s;
    if (s.kind !== "group" || this.#claiming || this.#closed || this.#seats.size === 0) return;
    this.#claiming = true;
    try {
      const keys = [...this.#seats.keys()];
      for (let i = 0; i < keys.length && !this.#closed; i += CLAIM_CHUNK) {
        const chunk = keys.slice(i, i + CLAIM_CHUNK);
        const p = s.cmd.pipeline();
        for (const key of chunk) p.call("XAUTOCLAIM", key, s.group, s.consumer, s.claimIdleMs, "0-0", "COUNT", s.batch);
        const replies = (await this.#abort.run(p.exec())) ?? [];
        replies.forEach(([err, reply], j) => {
          // A stream whose group vanished is recreated by its consumer's next read.
          if (err) return;
          const entries = (reply as [string, Entries] | null)?.[1];
          if (entries?.length) this.#deliver(chunk[j]!, entries);
        });
      }
    } catch (err) {
      if (!this.#closed) s.log.limited(`claim-${s.group}`, "warn", "durable consumers could not claim idle entries; trying again", { group: s.group, error: (err as Error).message });
    } finally {
      this.#claiming = false;
    }
  }
}
