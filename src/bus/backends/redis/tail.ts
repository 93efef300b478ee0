/**
 * A reader of one stream from a position on, outside any group (a resumable SSE subscriber):
 * it acknowledges nothing, and moves past a batch only once the batch was handed on. Its own
 * reads never block: at the end of the stream it waits in the tails' waiter (waiter.ts), whose
 * one blocked read serves every tail, so a thousand SSE subscribers of durable channels hold no
 * thousand Redis connections, and a new entry is read once for all the tails at the end.
 */
import type { Logger } from "../../../log/index.ts";
import type { RedisClient } from "../../../redis/index.ts";
import { abortable } from "../abortable.ts";
import { entryTime, sleep, type LogEntry } from "../backend.ts";
import { fieldValue, firstStreamEntries, type Entries } from "./replies.ts";
import type { Seat, StreamWaiter } from "./waiter.ts";

export interface StreamTailSetup {
  channel: string;
  key: string;
  /** Shared with the other readers, never blocked. */
  conn: RedisClient;
  /** A connection that fails at once while Redis is away (to pin the start). */
  cmd: RedisClient;
  /** Where it waits with the other tails once it has read all there is. */
  waiter: StreamWaiter;
  batch: number;
  log: Logger;
}

export class StreamTail {
  readonly #s: StreamTailSetup;
  readonly #onEntries: (entries: LogEntry[]) => Promise<void>;
  readonly #abort = abortable();
  #cursor: string;
  #closed = false;
  /** The last read came back short of a batch: the next entries are waited for with the other tails. */
  #atEnd = false;
  #done: Promise<void> = Promise.resolve();
  readonly #seat: Seat;

  constructor(setup: StreamTailSetup, afterId: string, onEntries: (entries: LogEntry[]) => Promise<void>) {
    this.#s = setup;
    this.#cursor = afterId;
    this.#onEntries = onEntries;
    this.#seat = setup.waiter.join(setup.key);
  }

  /**
   * Pins "$" before returning, so whatever is appended once the caller is told the tail is open
   * is read; if Redis is away now, the loop pins it once Redis answers.
   */
  async start(): Promise<void> {
    if (this.#cursor === "$") await this.#pin(this.#s.cmd).catch(() => {});
    this.#done = this.#loop();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#s.waiter.leave(this.#seat);
    await this.#done;
  }

  /** "$" as a concrete id, so a reconnect does not skip what arrived meanwhile. */
  async #pin(r: RedisClient): Promise<void> {
    const last = (await this.#abort.run(r.xrevrange(this.#s.key, "+", "-", "COUNT", 1))) as [string, string[]][];
    this.#cursor = last[0]?.[0] ?? "0-0";
  }

  async #readBatch(): Promise<void> {
    if (this.#cursor === "$") await this.#pin(this.#s.conn);
    let entries: Entries;
    if (this.#atEnd) {
      this.#seat.cursor = this.#cursor;
      entries = await this.#abort.run(this.#s.waiter.next(this.#seat));
    } else {
      entries = firstStreamEntries(await this.#abort.run(this.#s.conn.call("XREAD", "COUNT", this.#s.batch, "STREAMS", this.#s.key, this.#cursor)));
    }
    this.#atEnd = entries.length < this.#s.batch;
    if (!entries.length) return;
    const out: LogEntry[] = [];
    for (const [id, fields] of entries) if (fields) out.push({ id, raw: fieldValue(fields, "m") ?? "", refTimeMs: entryTime(id) });
    if (out.length) await this.#onEntries(out);
    // Only past what was handed on: a failure re-reads the batch (the reader's replay memory
    // drops what it already had) instead of skipping the rest of it.
    this.#cursor = entries[entries.length - 1]![0];
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      try {
        await this.#readBatch();
      } catch (err) {
        if (this.#closed) break;
        this.#atEnd = false;
        this.#s.log.limited(`tail-${this.#s.key}`, "warn", "stream reader waiting for redis", { channel: this.#s.channel, error: (err as Error).message });
        await sleep(500);
      }
    }
  }
}
