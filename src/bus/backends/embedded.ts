/**
 * The in-process bus: the default when no Redis is configured, so one appliance works out of
 * the box. Messages travel as the same sealed strings as on Redis (one code path verifies
 * both). Durable channels keep a bounded in-memory log for resume; nothing survives a restart.
 */
import { silentLogger, type Logger } from "../../log/index.ts";
import { WAIT_MAX_MS, WAIT_MIN_MS, type BusBackend, type Closer, type ConsumerOptions, type EntryHandler, type GroupInfo, type LogEntry, type Mark, type ReadyState, type Verdict } from "./backend.ts";
import { BackendUnavailableError, DEAD_SUFFIX, entryBefore, runInbound, sleep, type Inbound } from "./backend.ts";
import { SeqMemory } from "../seq-set.ts";

interface Log {
  entries: LogEntry[];
  /** Index in `entries` of the first entry, counted from the log's start (after trimming). */
  base: number;
  seq: number;
  lastMs: number;
  wake: Set<() => void>;
}

export class EmbeddedBackend implements BusBackend {
  readonly kind = "embedded" as const;
  readonly #subs = new Map<string, Set<(ch: string, raw: Inbound) => void>>();
  readonly #logs = new Map<string, Log>();
  #closed = false;

  constructor(
    private readonly maxLogLength = 100_000,
    private readonly log: Logger = silentLogger,
  ) {}

  async start(): Promise<void> {}
  async close(): Promise<void> {
    this.#closed = true;
    for (const log of this.#logs.values()) for (const w of log.wake) w();
  }
  isReady(): boolean {
    return !this.#closed;
  }
  onReady(): void {}
  async ready(): Promise<ReadyState> {
    return { ok: !this.#closed, detail: "embedded bus (in-process)", warnings: [] };
  }

  /** Channels with at least one pub/sub subscriber (status, tests). */
  channelCount(): number {
    return this.#subs.size;
  }

  async publish(wireChannel: string, raw: string): Promise<void> {
    this.publishLocal(wireChannel, raw);
  }

  publishLocal(wireChannel: string, raw: Inbound): void {
    const set = this.#subs.get(wireChannel);
    if (!set) return;
    // Deliver asynchronously, as a network bus would, so publishers never run handlers inline.
    queueMicrotask(() => {
      for (const fn of set) runInbound(fn, wireChannel, raw, this.log);
    });
  }

  async subscribe(wireChannels: readonly string[], onMessage: (ch: string, raw: Inbound) => void): Promise<Closer> {
    for (const ch of wireChannels) {
      let set = this.#subs.get(ch);
      if (!set) this.#subs.set(ch, (set = new Set()));
      set.add(onMessage);
    }
    return {
      close: async () => {
        for (const ch of wireChannels) {
          const set = this.#subs.get(ch);
          set?.delete(onMessage);
          // Channel names are the agents' to choose: an emptied one must not stay behind.
          if (set?.size === 0) this.#subs.delete(ch);
        }
      },
    };
  }

  #log(channel: string): Log {
    let log = this.#logs.get(channel);
    if (!log) this.#logs.set(channel, (log = { entries: [], base: 0, seq: 0, lastMs: 0, wake: new Set() }));
    return log;
  }

  async append(channel: string, raws: readonly string[]): Promise<string[]> {
    const log = this.#log(channel);
    const ids: string[] = [];
    for (const raw of raws) {
      const now = Date.now();
      if (now > log.lastMs) {
        log.lastMs = now;
        log.seq = 0;
      } else log.seq++;
      const id = `${log.lastMs}-${log.seq}`;
      log.entries.push({ id, raw, refTimeMs: log.lastMs });
      ids.push(id);
    }
    const excess = log.entries.length - this.maxLogLength;
    if (excess > 0) {
      log.entries.splice(0, excess);
      log.base += excess;
    }
    for (const w of log.wake) w();
    return ids;
  }

  readonly #marks = new Map<string, Map<string, string>>();

  async appendMarked(entries: readonly { channel: string; raw: string }[], mark: Mark): Promise<void> {
    if (this.#closed) throw new BackendUnavailableError("the embedded bus is closed");
    // Synchronous inside: nothing runs between the appends and the mark.
    for (const e of entries) void this.append(e.channel, [e.raw]);
    let h = this.#marks.get(mark.hash);
    if (!h) this.#marks.set(mark.hash, (h = new Map()));
    h.set(mark.field, mark.value);
  }

  async appendOnce(entries: readonly { channel: string; raw: string }[], once: { hash: string; field: string; seq: number }): Promise<boolean> {
    if (this.#closed) throw new BackendUnavailableError("the embedded bus is closed");
    const h = this.#marks.get(once.hash);
    const set = SeqMemory.parse(h?.get(once.field));
    if (set.seen(once.seq)) return false;
    await this.appendMarked(entries, { hash: once.hash, field: once.field, value: JSON.stringify(set.with(once.seq)) });
    return true;
  }

  async readMarks(hash: string): Promise<Map<string, string>> {
    return new Map(this.#marks.get(hash) ?? []);
  }

  /** Position (absolute index) of the first entry with id greater than `afterId`. */
  #positionAfter(log: Log, afterId: string): number {
    if (afterId === "$") return log.base + log.entries.length;
    let i = 0;
    while (i < log.entries.length && !entryBefore(afterId, log.entries[i]!.id)) i++;
    return log.base + i;
  }

  async #reader(channel: string, start: number, run: (batch: LogEntry[], next: number) => Promise<number>): Promise<Closer> {
    const log = this.#log(channel);
    let closed = false;
    let pos = start;
    let wake: (() => void) | undefined;
    const loop = async () => {
      while (!closed && !this.#closed) {
        const from = Math.max(pos - log.base, 0);
        const batch = log.entries.slice(from, from + 256);
        if (batch.length === 0) {
          await new Promise<void>((r) => {
            wake = r;
            log.wake.add(r);
          });
          if (wake) log.wake.delete(wake);
          continue;
        }
        pos = await run(batch, log.base + from);
      }
    };
    const done = loop();
    return {
      close: async () => {
        closed = true;
        wake?.();
        await done;
      },
    };
  }

  async consume(channel: string, opts: ConsumerOptions, handle: EntryHandler): Promise<Closer> {
    const log = this.#log(channel);
    const attempts = new Map<string, number>();
    let waitMs = WAIT_MIN_MS;
    /** The handlers' deferred writes, before the position moves past what they took. */
    const settled = async (pos: number, at: number): Promise<number> => {
      try {
        opts.settle?.();
        return pos;
      } catch (err) {
        this.log.limited(`consume-settle-${channel}`, "warn", "durable handlers could not finish their batch; delivering it again", { channel, error: (err as Error)?.message });
        await sleep(1_000);
        return at;
      }
    };
    return this.#reader(channel, log.base + log.entries.length, async (batch, at) => {
      let pos = at;
      for (const entry of batch) {
        let verdict: Verdict;
        try {
          verdict = await handle(entry);
        } catch (err) {
          this.log.limited(`consume-handler-${channel}`, "warn", "durable handler failed", { channel, error: (err as Error)?.message });
          verdict = "retry";
        }
        if (verdict === "wait") {
          // No room on our side: settle what came before, read this entry again later, no attempt counted.
          const next = await settled(pos, at);
          await sleep(waitMs);
          waitMs = Math.min(waitMs * 2, WAIT_MAX_MS);
          return next;
        }
        waitMs = WAIT_MIN_MS;
        if (verdict === "retry") {
          const n = (attempts.get(entry.id) ?? 0) + 1;
          if (n < opts.maxAttempts) {
            attempts.set(entry.id, n);
            const next = await settled(pos, at);
            await sleep(Math.min(100 * 2 ** n, 5_000));
            return next; // retry this entry, in order
          }
          await this.append(channel + DEAD_SUFFIX, [entry.raw]);
        } else if (verdict !== "ack") {
          await this.append(channel + DEAD_SUFFIX, [entry.raw]);
        }
        attempts.delete(entry.id);
        pos++;
      }
      return settled(pos, at);
    });
  }

  /** In-process consumers hold their position in memory: no groups outlive them. */
  async groups(): Promise<GroupInfo[]> {
    return [];
  }
  async dropGroup(): Promise<void> {}

  async tail(channel: string, afterId: string, onEntries: (entries: LogEntry[]) => Promise<void>): Promise<Closer> {
    const log = this.#log(channel);
    return this.#reader(channel, this.#positionAfter(log, afterId), async (batch, at) => {
      await onEntries(batch);
      return at + batch.length;
    });
  }
}
