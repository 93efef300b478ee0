/**
 * The loop behind a durable pull consumer of ours (frames, the reference's envelopes): fetches
 * while there is a consumer (NATS connected) and the local bus can take messages, hands each on
 * in order, and sends back, counted as an attempt, one whose handling failed unexpectedly, so a
 * message that always fails ends in the dead-letter stream rather than stopping the loop.
 */
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "../log/index.ts";

export interface PullOptions {
  /** Names the loop in logs ("WAN frame", "Pilox envelope"). */
  what: string;
  /** False pauses fetching: nothing is delivered, so no attempt is spent. */
  ready: () => boolean;
  batch: () => number;
  handle: (m: JsMsg) => Promise<void>;
  log: Logger;
}

export class Puller {
  #consumer: Consumer | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(private readonly o: PullOptions) {}

  /** Starts (or resumes) consuming with this consumer; undefined while NATS is away. */
  attach(consumer: Consumer | undefined): void {
    this.#consumer = consumer;
    this.#wake?.();
  }

  start(): void {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      const consumer = this.#consumer;
      if (!consumer || !this.o.ready()) {
        await this.#sleep(250);
        continue;
      }
      try {
        const batch = await consumer.fetch({ max_messages: this.o.batch(), expires: 2_000 });
        for await (const m of batch) {
          if (this.#closed) break; // left unacknowledged: redelivered after ack_wait
          try {
            await this.o.handle(m);
          } catch (err) {
            this.o.log.limited(`pull-handle-${this.o.what}`, "error", `${this.o.what} failed; it will be retried`, { error: (err as Error).message, subject: m.subject });
            m.nak(1_000);
          }
        }
      } catch (err) {
        if (this.#closed) break;
        this.o.log.limited(`pull-fetch-${this.o.what}`, "warn", `${this.o.what} fetch failed; retrying`, { error: (err as Error).message });
        await this.#sleep(1_000);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.#wake = () => (clearTimeout(t), r());
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await this.#loop;
  }
}
