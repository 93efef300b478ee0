/**
 * A reader of one stream from a position on, outside any group (a resumable SSE subscriber):
 * it acknowledges nothing, and moves past a batch only once the batch was handed on.
 */
import type { Logger } from "../../../log/index.ts";
import type { RedisClient } from "../../../redis/index.ts";
import { abortable } from "../abortable.ts";
import { entryTime, sleep, type LogEntry } from "../backend.ts";
import { fieldValue, firstStreamEntries } from "./replies.ts";

export interface StreamTailSetup {
  channel: string;
  key: string;
  /** The tail's own connection: a blocked read holds it. */
  conn: RedisClient;
  /** A connection that fails at once while Redis is away (to pin the start). */
  cmd: RedisClient;
  blockMs: number;
  log: Logger;
}

export class StreamTail {
  readonly #s: StreamTailSetup;
  readonly #onEntries: (entries: LogEntry[]) => Promise<void>;
  readonly #abort = abortable();
  #cursor: string;
  #closed = false;
  #done: Promise<void> = Promise.resolve();

  constructor(setup: StreamTailSetup, afterId: string, onEntries: (entries: LogEntry[]) => Promise<void>) {
    this.#s = setup;
    this.#cursor = afterId;
    this.#onEntries = onEntries;
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
    this.#s.conn.disconnect();
    await this.#done;
  }

  /** "$" as a concrete id, so a reconnect does not skip what arrived meanwhile. */
  async #pin(r: RedisClient): Promise<void> {
    const last = (await this.#abort.run(r.xrevrange(this.#s.key, "+", "-", "COUNT", 1))) as [string, string[]][];
    this.#cursor = last[0]?.[0] ?? "0-0";
  }

  async #readBatch(): Promise<void> {
    if (this.#cursor === "$") await this.#pin(this.#s.conn);
    const reply = await this.#abort.run(this.#s.conn.call("XREAD", "COUNT", 256, "BLOCK", this.#s.blockMs, "STREAMS", this.#s.key, this.#cursor));
    const entries = firstStreamEntries(reply);
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
        this.#s.log.limited(`tail-${this.#s.key}`, "warn", "stream reader waiting for redis", { channel: this.#s.channel, error: (err as Error).message });
        await sleep(500);
      }
    }
  }
}
