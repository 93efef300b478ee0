/**
 * One durable consumer of one stream, in a consumer group: our own pending history first (what
 * was delivered before a restart or a failure and never acknowledged), then new entries. Its
 * reads never block: with nothing left to read it takes a seat in its group member's waiter
 * (waiter.ts), whose one blocked read serves every idle stream, and which also hands it entries
 * another consumer of the group left idle. Acknowledgements ride with the next read, after the
 * handlers' deferred writes (`settle`).
 */
import { setImmediate } from "node:timers";
import type { Logger } from "../../../log/index.ts";
import type { RedisClient } from "../../../redis/index.ts";
import { abortable } from "../abortable.ts";
import { DEAD_SUFFIX, entryTime, sleep, WAIT_MAX_MS, WAIT_MIN_MS, type ConsumerOptions, type EntryHandler, type Verdict } from "../backend.ts";
import { fieldValue, firstStreamEntries, type Entries } from "./replies.ts";
import type { StreamWaiter, Seat } from "./waiter.ts";

export interface StreamConsumerSetup {
  channel: string;
  /** The stream's key. */
  key: string;
  /** Shared by the consumers, never blocked. */
  conn: RedisClient;
  /** Where it waits, with the other idle streams of its group member, when it has read all. */
  waiter: StreamWaiter;
  streamMaxLen: number;
  connectTimeoutMs: number;
  log: Logger;
}

/** XGROUP CREATE that takes an existing group as success. */
export async function ensureGroup(r: RedisClient, key: string, group: string, from: "$" | "0"): Promise<void> {
  try {
    await r.xgroup("CREATE", key, group, from, "MKSTREAM");
  } catch (err) {
    if (!/BUSYGROUP/.test((err as Error).message)) throw err;
  }
}

/** Why the handling of a batch ended: all of it went through, or the rest is read again. */
type BatchEnd = "ok" | "stop";

export class StreamConsumer {
  readonly #s: StreamConsumerSetup;
  readonly #opts: ConsumerOptions;
  readonly #handle: EntryHandler;
  readonly #attempts = new Map<string, number>();
  /** Entries handled whose XACK has not reached Redis yet (it went away in between). */
  readonly #unacked: string[] = [];
  readonly #abort = abortable();
  #closed = false;
  #hasGroup = false;
  #waitMs = WAIT_MIN_MS;
  #done: Promise<void> = Promise.resolve();
  readonly #seat: Seat;

  constructor(setup: StreamConsumerSetup, opts: ConsumerOptions, handle: EntryHandler) {
    this.#s = setup;
    this.#opts = opts;
    this.#handle = handle;
    this.#seat = setup.waiter.join(setup.key);
  }

  /**
   * Creates the group before returning, so what is published after this is kept for it; when
   * Redis is away, the loop creates it once it can.
   */
  async start(): Promise<void> {
    try {
      await Promise.race([this.#ensureGroup("$"), sleep(this.#s.connectTimeoutMs)]);
    } catch {
      /* the loop retries */
    }
    this.#done = this.#loop();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#s.waiter.leave(this.#seat); // unacknowledged entries stay pending, read again at the next start
    await this.#done;
    try {
      this.#settle();
    } catch (err) {
      this.#s.log.warn("durable handlers could not finish their batch; it is delivered again after restart", { channel: this.#s.channel, error: (err as Error).message });
    }
    if (this.#unacked.length) await this.#lastAck();
  }

  async #ensureGroup(from: "$" | "0"): Promise<void> {
    await ensureGroup(this.#s.conn, this.#s.key, this.#opts.group, from);
    this.#hasGroup = true;
  }

  /** One last try to acknowledge what was handled, so a restart does not redeliver it. */
  async #lastAck(): Promise<void> {
    try {
      await Promise.race([this.#s.conn.xack(this.#s.key, this.#opts.group, ...this.#unacked), sleep(2_000)]);
    } catch {
      /* left pending: redelivered to this consumer after restart, where handlers see it again */
    }
  }

  /** Before any XACK: the handlers' deferred writes. If they fail, nothing handled is acknowledged. */
  #settle(): void {
    if (!this.#opts.settle || this.#unacked.length === 0) return;
    try {
      this.#opts.settle();
    } catch (err) {
      this.#unacked.length = 0; // still pending in the group: read again from our history
      throw err;
    }
  }

  async #flushAcks(): Promise<void> {
    this.#settle();
    while (this.#unacked.length) {
      const ids = this.#unacked.slice(0, 500);
      await this.#abort.run(this.#s.conn.xack(this.#s.key, this.#opts.group, ...ids));
      this.#unacked.splice(0, ids.length);
    }
  }

  /** Never drops an accepted message: parks it whole where an operator can inspect and replay it. */
  async #deadLetter(id: string, fields: string[], reason: string, n: number): Promise<void> {
    const raw = fieldValue(fields, "m");
    // The original entry goes along whole: its message field, or all its fields when it had none.
    const original = raw === undefined ? ["fields", JSON.stringify(fields)] : ["m", raw];
    await this.#abort.run(this.#s.conn.xadd(this.#s.key + DEAD_SUFFIX, "MAXLEN", "~", this.#s.streamMaxLen, "*", ...original, "reason", reason, "failedId", id, "attempts", String(n)));
    this.#attempts.delete(id);
    this.#unacked.push(id);
  }

  async #verdictOf(id: string, fields: string[]): Promise<Verdict> {
    try {
      return await this.#handle({ id, raw: fieldValue(fields, "m") ?? "", refTimeMs: entryTime(id) });
    } catch (err) {
      this.#s.log.limited(`consume-handler-${this.#s.key}`, "warn", "durable handler failed", { channel: this.#s.channel, error: (err as Error)?.message });
      return "retry";
    }
  }

  async #handleEntries(entries: Entries): Promise<BatchEnd> {
    for (const [id, fields] of entries) {
      if (this.#closed) return "stop";
      // A pending entry that was trimmed away comes back with no fields: nothing to deliver.
      if (!fields) {
        this.#unacked.push(id);
        continue;
      }
      const verdict = await this.#verdictOf(id, fields);
      if (verdict === "ack") {
        this.#attempts.delete(id);
        this.#unacked.push(id);
        this.#waitMs = WAIT_MIN_MS;
        continue;
      }
      if (verdict === "wait") return this.#pauseForRoom();
      if (verdict !== "retry") {
        await this.#deadLetter(id, fields, verdict.dead, (this.#attempts.get(id) ?? 0) + 1);
        continue;
      }
      const n = (this.#attempts.get(id) ?? 0) + 1;
      this.#attempts.set(id, n);
      if (n >= this.#opts.maxAttempts) {
        await this.#deadLetter(id, fields, "max_attempts", n);
        continue;
      }
      await this.#flushAcks();
      await sleep(Math.min(100 * 2 ** n, 5_000));
      return "stop"; // re-read our own pending entries so the failed one is retried in order
    }
    // Acknowledged with the next read (see #read), after the handlers' deferred writes.
    this.#settle();
    return "ok";
  }

  /**
   * No room on our side: what came before is settled and acknowledged, this entry and the rest
   * stay pending (no attempt counted) and are read again after a pause.
   */
  async #pauseForRoom(): Promise<BatchEnd> {
    this.#s.log.limited(`consume-wait-${this.#s.key}`, "warn", "durable consumer paused: its queue is full", { channel: this.#s.channel });
    await this.#flushAcks();
    await sleep(this.#waitMs);
    this.#waitMs = Math.min(this.#waitMs * 2, WAIT_MAX_MS);
    return "stop";
  }

  /**
   * The next read, with the acknowledgements it waits on in the same write (one round trip,
   * not two). What the handlers set off goes out before that: an XACK written first put its
   * system call on the path of, say, a WAN frame's publish.
   */
  async #read(args: (string | number)[]): Promise<unknown> {
    const { conn, key } = this.#s;
    if (this.#unacked.length === 0 || this.#unacked.length > 500) {
      await this.#flushAcks();
      return this.#abort.run(conn.call("XREADGROUP", ...args));
    }
    // #handleEntries settled the batch already.
    await new Promise((done) => setImmediate(done));
    const ids = this.#unacked.slice();
    const replies = (await this.#abort.run(conn.pipeline().xack(key, this.#opts.group, ...ids).call("XREADGROUP", ...args).exec())) ?? [];
    const [ackErr] = replies[0] ?? [new Error("no reply to XACK")];
    if (ackErr) throw ackErr; // still unacknowledged: sent again (what this read got is re-read from our history)
    this.#unacked.splice(0, ids.length);
    const [readErr, reply] = replies[1] ?? [new Error("no reply to XREADGROUP")];
    if (readErr) throw readErr;
    return reply;
  }

  async #recover(err: unknown): Promise<void> {
    const msg = (err as Error).message;
    if (/NOGROUP/.test(msg)) {
      // The stream or group vanished (a Redis without persistence restarted): recreate it from
      // the start of whatever the stream now holds.
      await this.#abort.run(this.#ensureGroup("0")).catch(() => {});
    } else {
      this.#s.log.limited(`consume-${this.#s.key}`, "warn", "durable consumer waiting for redis", { channel: this.#s.channel, error: msg });
    }
  }

  /** New entries: read while there are some, then wait with the other idle streams. */
  async #readNew(): Promise<Entries> {
    const o = this.#opts;
    const entries = firstStreamEntries(await this.#read(["GROUP", o.group, o.consumer, "COUNT", o.batch, "STREAMS", this.#s.key, ">"]));
    if (entries.length) return entries;
    await this.#flushAcks();
    return this.#abort.run(this.#s.waiter.next(this.#seat));
  }

  async #loop(): Promise<void> {
    const o = this.#opts;
    let pendingCursor: string | null = "0";
    let backoff = 100;
    while (!this.#closed) {
      try {
        if (!this.#hasGroup) await this.#abort.run(this.#ensureGroup("$"));
        // Read or claimed for us while we were busy: already ours, pending in the group.
        const handed = this.#seat.inbox.splice(0);
        if (handed.length && (await this.#handleEntries(handed)) === "stop") {
          pendingCursor = "0";
          continue;
        }
        if (pendingCursor === null) {
          const entries = await this.#readNew();
          backoff = 100;
          if ((await this.#handleEntries(entries)) === "stop") pendingCursor = "0";
          continue;
        }
        // Our own history first.
        const entries = firstStreamEntries(await this.#read(["GROUP", o.group, o.consumer, "COUNT", o.batch, "STREAMS", this.#s.key, pendingCursor]));
        backoff = 100;
        if (entries.length === 0) {
          pendingCursor = null;
          continue;
        }
        pendingCursor = entries[entries.length - 1]![0];
        if ((await this.#handleEntries(entries)) === "stop") pendingCursor = "0";
      } catch (err) {
        if (this.#closed) break;
        await this.#recover(err);
        pendingCursor = "0";
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2_000);
      }
    }
  }
}
