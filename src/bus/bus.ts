/**
 * The mesh bus: seals and publishes, admits and delivers. Best-effort channels ride pub/sub;
 * durable ones ride the backend's log with acknowledgement after the handler succeeds, and
 * fall back to the on-disk spool while the backend is away.
 */
import { silentLogger, type Logger } from "../log/index.ts";
import type { BusMetrics } from "../metrics/index.ts";
import { BackendUnavailableError, entryBefore, type BusBackend, type Closer, type Inbound, type LogEntry, type Mark, type Verdict } from "./backends/backend.ts";
import { canonicalChannel, wireNamesOf } from "./channels.ts";
import { LocalDelivery, VerifiedDelivery, type Delivery } from "./delivery.ts";
import { checkSize, frame, MessageTooLargeError, SealError, sealToWire, wireLength, type SealOptions } from "./envelope/seal.ts";
import type { JsonObject } from "./envelope/v1.ts";
import type { VerifyPolicy } from "./envelope/verify.ts";
import { InboundGuard } from "./guard.ts";
import { LocalMessage } from "./local.ts";
import type { KeyRing } from "./keyring.ts";
import { ReplayJournal } from "./replay.ts";
import { Spool, SpoolFullError } from "./spool.ts";
import type { TraceContext } from "./trace.ts";

export interface ChannelOptions {
  durable: boolean;
  maxAgeMs?: number;
}

export interface BusOptions {
  backend: BusBackend;
  ring: KeyRing;
  policy: VerifyPolicy;
  channels: ReadonlyMap<string, ChannelOptions>;
  /** Producer name written into meshMeta when the publisher gives none. */
  producer: string;
  consumerGroup: string;
  consumerName: string;
  claimIdleMs: number;
  maxAttempts: number;
  replayCacheSize: number;
  /** Directory of the durable spool; without one, durable publishes fail while the backend is away. */
  spoolDir?: string;
  /** The replay memory's journal (replay.ts): written before delivery, so even a crash forgets no id. */
  replayFile?: string;
  /** A JSON snapshot of the replay memory written by earlier versions, imported once. */
  legacyReplayFile?: string;
  spoolMaxBytes: number;
  metrics?: BusMetrics;
  log?: Logger;
}

export type { Delivery };

export type Handler = (d: Delivery) => void | Promise<void>;

export interface PublishResult {
  eventId: string;
  channel: string;
  durable: boolean;
  /** Log entry id, when it went straight to the log. */
  id?: string;
  /** True when it waits in the spool for the backend to return. */
  spooled: boolean;
}

export class BusUnavailableError extends Error {
  override name = "BusUnavailableError";
  constructor(readonly code: "backend_unavailable" | "spool_full" | "shutting_down", message: string) {
    super(message);
  }
}

export class MeshBus {
  #ring: KeyRing;
  #opts: BusOptions;
  readonly #log: Logger;
  readonly #guard: InboundGuard;
  readonly #spool: Spool | undefined;
  readonly #taps = new Map<string, { handlers: Set<Handler>; closer: Promise<Closer> }>();
  /** Per durable channel: the replay memory its tails share, and how many tails use it. */
  readonly #tailGuards = new Map<string, { guard: InboundGuard; readers: number }>();
  readonly #closers = new Set<Closer>();
  #flushing: Promise<void> | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #sealDefaults: SealOptions;
  #journal: ReplayJournal | undefined;

  constructor(opts: BusOptions) {
    this.#opts = opts;
    this.#sealDefaults = { producer: opts.producer };
    this.#ring = opts.ring;
    this.#log = opts.log ?? silentLogger;
    this.#guard = new InboundGuard(() => this.#ring, (ch) => this.policyFor(ch), opts.replayCacheSize, opts.metrics, this.#log);
    this.#spool = opts.spoolDir ? new Spool(opts.spoolDir, opts.spoolMaxBytes) : undefined;
    if (opts.replayFile) {
      this.#journal = new ReplayJournal(opts.replayFile, this.#guard.replay, this.#log, opts.legacyReplayFile);
      this.#guard.persistTo(this.#journal);
    }
    this.#updateSpoolGauges();
    opts.backend.onReady(() => void this.flushSpool());
  }

  get backend(): BusBackend {
    return this.#opts.backend;
  }

  async start(): Promise<void> {
    await this.#opts.backend.start();
    // While anything waits in the spool, try to flush it every second.
    this.#flushTimer = setInterval(() => {
      if (this.#spool?.size) void this.flushSpool();
    }, 1_000);
    this.#flushTimer.unref();
  }

  /** Swaps keys and policy on reload; subscriptions and in-flight work carry on. */
  reconfigure(ring: KeyRing, policy: VerifyPolicy, channels: ReadonlyMap<string, ChannelOptions>): void {
    this.#ring = ring;
    this.#opts = { ...this.#opts, ring, policy, channels };
  }

  get keyRing(): KeyRing {
    return this.#ring;
  }

  isDurable(channel: string): boolean {
    return this.#opts.channels.get(canonicalChannel(channel))?.durable ?? false;
  }

  durableChannels(): string[] {
    return [...this.#opts.channels].filter(([, c]) => c.durable).map(([n]) => n);
  }

  policyFor(wireChannel: string): VerifyPolicy {
    const c = this.#opts.channels.get(canonicalChannel(wireChannel));
    return c?.maxAgeMs === undefined ? this.#opts.policy : { ...this.#opts.policy, maxAgeMs: c.maxAgeMs };
  }

  spoolStats(): { messages: number; bytes: number; maxBytes: number } {
    return { messages: this.#spool?.size ?? 0, bytes: this.#spool?.bytes ?? 0, maxBytes: this.#opts.spoolMaxBytes };
  }

  /**
   * Seals and publishes. Resolves once the message is on the backend or, for a durable
   * channel while the backend is away, in the spool; otherwise rejects with BusUnavailableError.
   */
  async publish(channel: string, message: JsonObject, opts?: SealOptions): Promise<PublishResult> {
    if (this.#closed) throw new BusUnavailableError("shutting_down", "the bus is shutting down");
    const name = canonicalChannel(channel);
    const sealOpts = opts ? { producer: this.#opts.producer, ...opts } : this.#sealDefaults;
    const durable = this.isDurable(name);
    const max = this.#opts.policy.maxBytes;
    const backend = this.#opts.backend;
    if (!durable && backend.publishLocal) {
      // In-process: framed now (every check a seal makes), signed only if a subscriber needs the wire form.
      const m = new LocalMessage(this, frame(name, message, this.#ring.primary.id, sealOpts), this.#ring.primary);
      checkSize(wireLength(m.framed), () => Buffer.byteLength(m.wire()), max);
      backend.publishLocal(name, m);
      this.#opts.metrics?.published.inc({ durable: "false" });
      return { eventId: m.eventId, channel: name, durable, spooled: false };
    }
    // Sealing validates too, so a bad message is refused before it can reach the spool.
    const { wire, eventId, meshMeta } = sealToWire(name, message, this.#ring.primary, sealOpts);
    // Every receiver refuses a message over the bound: refuse it here, where the sender hears.
    checkSize(wire.length, () => Buffer.byteLength(wire), max);

    if (!durable) {
      try {
        await backend.publish(name, wire);
      } catch (err) {
        if (err instanceof BackendUnavailableError) throw new BusUnavailableError("backend_unavailable", err.message);
        throw err;
      }
      this.#opts.metrics?.published.inc({ durable: "false" });
      return { eventId, channel: name, durable, spooled: false };
    }
    // Keep order: once anything is spooled, later publishes queue behind it.
    if (this.#spool && (this.#spool.size > 0 || !this.#opts.backend.isReady())) return this.#toSpool(name, withMeta(message, meshMeta), eventId, sealOpts);
    try {
      const [id] = await this.#opts.backend.append(name, [wire]);
      this.#opts.metrics?.published.inc({ durable: "true" });
      return { eventId, channel: name, durable, id: id!, spooled: false };
    } catch (err) {
      if (!(err instanceof BackendUnavailableError)) throw err;
      if (!this.#spool) throw new BusUnavailableError("backend_unavailable", err.message);
      return this.#toSpool(name, withMeta(message, meshMeta), eventId, sealOpts);
    }
  }

  /** Seals a group for publishMarked/publishOnce: durable ones, best-effort ones, and refusals by index. */
  #sealGroup(items: readonly { channel: string; message: JsonObject; trace?: TraceContext }[], opts: SealOptions) {
    if (this.#closed) throw new BusUnavailableError("shutting_down", "the bus is shutting down");
    if (!this.#opts.backend.isReady()) throw new BusUnavailableError("backend_unavailable", "the bus backend is not connected");
    const sealOpts = { producer: this.#opts.producer, ...opts };
    const max = this.#opts.policy.maxBytes;
    const durable: { channel: string; raw: string }[] = [];
    const other: { channel: string; raw: string }[] = [];
    const refused: { index: number; reason: string; detail: string }[] = [];
    items.forEach((it, index) => {
      try {
        const name = canonicalChannel(it.channel);
        const { wire } = sealToWire(name, it.message, this.#ring.primary, it.trace ? { ...sealOpts, trace: it.trace } : sealOpts);
        checkSize(wire.length, () => Buffer.byteLength(wire), max);
        (this.isDurable(name) ? durable : other).push({ channel: name, raw: wire });
      } catch (err) {
        if (!(err instanceof SealError)) throw err;
        refused.push({ index, reason: err instanceof MessageTooLargeError ? "oversized" : "invalid_message", detail: err.message });
      }
    });
    return { durable, other, refused };
  }

  /**
   * Best-effort ones after the durable ones landed: they promise no more than pub/sub does.
   * Issued together, in order (the backend sends them as one batch), not one round trip each.
   */
  async #publishOthers(durable: number, other: readonly { channel: string; raw: string }[]): Promise<void> {
    if (durable) this.#opts.metrics?.published.inc({ durable: "true" }, durable);
    const sent = await Promise.allSettled(other.map((o) => this.#opts.backend.publish(o.channel, o.raw)));
    for (const r of sent) {
      if (r.status === "fulfilled") this.#opts.metrics?.published.inc({ durable: "false" });
      else if (!(r.reason instanceof BackendUnavailableError)) throw r.reason;
    }
  }

  /**
   * Seals a group of messages and puts them on the bus with a mark, atomically for the durable
   * ones (see BusBackend.appendMarked); best-effort ones are published after. A message that
   * fails sealing (invalid, too large) is refused alone, by index. Nothing is spooled: while the
   * backend is away this throws BusUnavailableError and the caller keeps its input for later.
   */
  async publishMarked(items: readonly { channel: string; message: JsonObject; trace?: TraceContext }[], opts: SealOptions, mark: Mark): Promise<{ published: number; refused: { index: number; reason: string; detail: string }[] }> {
    const { durable, other, refused } = this.#sealGroup(items, opts);
    try {
      await this.#opts.backend.appendMarked(durable, mark);
    } catch (err) {
      if (err instanceof BackendUnavailableError) throw new BusUnavailableError("backend_unavailable", err.message);
      throw err;
    }
    await this.#publishOthers(durable.length, other);
    return { published: durable.length + other.length, refused };
  }

  /**
   * As publishMarked, but only if `once.seq` is not yet in the sequence set `once` names, which
   * records it in the same atomic step (BusBackend.appendOnce): `duplicate` when it was there.
   */
  async publishOnce(items: readonly { channel: string; message: JsonObject; trace?: TraceContext }[], opts: SealOptions, once: { hash: string; field: string; seq: number }): Promise<{ duplicate: boolean; published: number; refused: { index: number; reason: string; detail: string }[] }> {
    const { durable, other, refused } = this.#sealGroup(items, opts);
    let fresh: boolean;
    try {
      fresh = await this.#opts.backend.appendOnce(durable, once);
    } catch (err) {
      if (err instanceof BackendUnavailableError) throw new BusUnavailableError("backend_unavailable", err.message);
      throw err;
    }
    if (!fresh) return { duplicate: true, published: 0, refused: [] };
    await this.#publishOthers(durable.length, other);
    return { duplicate: false, published: durable.length + other.length, refused };
  }

  #toSpool(channel: string, message: JsonObject, eventId: string, opts: SealOptions): PublishResult {
    try {
      // The origin and trace context go with it: sealed later, it must say the same.
      this.#spool!.append({ channel, message, ...(opts.origin !== undefined ? { origin: opts.origin } : {}), ...(opts.trace ? { trace: opts.trace } : {}), ...(opts.v1Only ? { v1: true as const } : {}) });
    } catch (err) {
      if (err instanceof SpoolFullError) {
        this.#opts.metrics?.spoolRefused.inc();
        this.#log.limited("spool-full", "error", "durable publish refused: spool full", { channel, max_bytes: this.#opts.spoolMaxBytes });
        throw new BusUnavailableError("spool_full", err.message);
      }
      throw err;
    }
    this.#opts.metrics?.published.inc({ durable: "true" });
    this.#updateSpoolGauges();
    return { eventId, channel, durable: true, spooled: true };
  }

  #updateSpoolGauges(): void {
    this.#opts.metrics?.spoolDepth.set(this.#spool?.size ?? 0);
    this.#opts.metrics?.spoolBytes.set(this.#spool?.bytes ?? 0);
  }

  /** Sends spooled publishes in order; each is sealed now, so it is fresh when it lands. */
  flushSpool(): Promise<void> {
    if (!this.#spool || this.#spool.size === 0) return Promise.resolve();
    // `finally` runs asynchronously, so the flag cannot be cleared before it is set.
    this.#flushing ??= this.#drainSpool(this.#spool).finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #drainSpool(spool: Spool): Promise<void> {
    try {
      while (spool.size > 0 && this.#opts.backend.isReady()) {
        const batch = spool.peek(256);
        // Consecutive entries of one channel go in one pipeline; order is kept per channel.
        // Corrupt lines (null) are dropped with the batch they sit in.
        const channel = batch.find((e) => e !== null)?.channel;
        let n = 0;
        while (n < batch.length && (batch[n] === null || batch[n]!.channel === channel)) n++;
        const now = Date.now();
        const raws: string[] = [];
        for (const e of batch.slice(0, n)) if (e) raws.push(sealToWire(e.channel, e.message as JsonObject, this.#ring.primary, { now, ...(e.origin !== undefined ? { origin: e.origin } : {}), ...(e.trace ? { trace: e.trace } : {}), ...(e.v1 ? { v1Only: true } : {}) }).wire);
        if (channel !== undefined) await this.#opts.backend.append(channel, raws);
        spool.drop(n);
        this.#updateSpoolGauges();
      }
      if (spool.size === 0) this.#log.info("spool flushed");
      else this.#log.debug("spool flush waiting for the backend", { waiting: spool.size });
    } catch (err) {
      this.#log.limited("spool-flush", "warn", "spool flush paused", { error: (err as Error).message, waiting: spool.size });
    }
  }

  /**
   * Subscribes to verified messages. On a durable channel the subscription is a consumer in a
   * group: an entry is acknowledged after `handler` resolves, and retried (then dead-lettered)
   * when it throws.
   */
  async subscribe(channel: string, handler: Handler, opts: { group?: string; settle?: () => void } = {}): Promise<Closer> {
    const name = canonicalChannel(channel);
    this.#log.debug("subscribe", { channel: name, durable: this.isDurable(name), group: opts.group });
    if (this.isDurable(name)) return this.#consume(name, handler, opts.group ?? this.#opts.consumerGroup, opts.settle);
    let tap = this.#taps.get(name);
    if (!tap) {
      const handlers = new Set<Handler>();
      // Admitted messages wait for the end of the current callback stack: their claims are
      // journalled with one write, then handed on (a crash after delivery forgets no id).
      let pending: Delivery[] = [];
      const deliver = (d: Delivery) => {
        for (const h of handlers) {
          try {
            const r = h(d);
            if (r instanceof Promise) r.catch((err) => this.#handlerFailed(name, err));
          } catch (err) {
            this.#handlerFailed(name, err);
          }
        }
      };
      const deliverPending = () => {
        this.#guard.commit();
        const batch = pending;
        pending = [];
        for (const d of batch) deliver(d);
      };
      const closer = this.#opts.backend.subscribe(wireNamesOf(name), (wireCh, raw) => {
        const d = this.#admit(wireCh, raw);
        if (!d) return;
        this.#opts.metrics?.delivered.inc({ durable: "false" });
        // Without a journal (a library bus) there is nothing to write first: hand it on now.
        if (!this.#journal) deliver(d);
        else if (pending.push(d) === 1) queueMicrotask(deliverPending);
      });
      tap = { handlers, closer };
      this.#taps.set(name, tap);
    }
    tap.handlers.add(handler);
    await tap.closer;
    const t = tap;
    const c: Closer = {
      close: async () => {
        t.handlers.delete(handler);
        this.#closers.delete(c);
        if (t.handlers.size === 0 && this.#taps.get(name) === t) {
          this.#taps.delete(name);
          await (await t.closer).close();
        }
      },
    };
    this.#closers.add(c);
    return c;
  }

  /**
   * A pub/sub message in: our own in-process ones are claimed against replay and handed on
   * unverified; everything else (another bus's, even on the same backend) is verified.
   */
  #admit(wireCh: string, raw: Inbound): Delivery | undefined {
    if (typeof raw !== "string") {
      if (raw instanceof LocalMessage && raw.from === this) return this.#guard.claimLocal(wireCh, raw.eventId, raw.sentAt) ? new LocalDelivery(raw) : undefined;
      raw = raw.wire();
    }
    const a = this.#guard.admit(wireCh, raw);
    return a.ok ? new VerifiedDelivery(a.value) : undefined;
  }

  #handlerFailed(channel: string, err: unknown): void {
    this.#log.limited(`handler-${channel}`, "warn", "subscriber handler failed", { channel, error: (err as Error)?.message ?? String(err) });
  }

  /**
   * `settle`: the handler's deferred work for the entries it took (see ConsumerOptions.settle).
   * Their claims reach the replay journal only after it, in one write: an entry the handler
   * could not finish is delivered again, not refused as a replay.
   */
  async #consume(channel: string, handler: Handler, group: string, handlerSettle?: () => void): Promise<Closer> {
    const guard = this.#guard;
    let claims: [string, number][] = [];
    const settle = () => {
      const batch = claims;
      claims = [];
      try {
        handlerSettle?.();
      } catch (err) {
        for (const [id] of batch) guard.release(id);
        throw err;
      }
      guard.persist(batch);
    };
    const closer = await this.#opts.backend.consume(
      channel,
      { group, consumer: this.#opts.consumerName, claimIdleMs: this.#opts.claimIdleMs, maxAttempts: this.#opts.maxAttempts, batch: 128, settle },
      async (entry): Promise<Verdict> => {
        const a = guard.admit(channel, entry.raw, entry.refTimeMs, false, `group:${group}`);
        if (!a.ok) {
          // A copy of what was delivered is acknowledged (counted); anything else refused is
          // parked in the dead-letter log with its reason, never silently acknowledged.
          if (a.reason === "replayed") {
            this.#opts.metrics?.duplicates.inc();
            return "ack";
          }
          return { dead: a.reason };
        }
        try {
          await handler(new VerifiedDelivery(a.value, entry.id));
        } catch (err) {
          guard.release(a.key); // so the retry is not taken for a replay
          // A full queue is backpressure, not a failure of the message: no attempt is spent.
          if (err instanceof SpoolFullError) return "wait";
          this.#handlerFailed(channel, err);
          return "retry";
        }
        claims.push([a.key, a.expires]);
        this.#opts.metrics?.delivered.inc({ durable: "true" });
        return "ack";
      },
    );
    return this.#track(closer);
  }

  /**
   * Streams verified entries of a durable channel after `afterId` ("$": only new ones), with
   * their log ids, for resumable readers (the agent API's SSE with Last-Event-ID).
   */
  async tail(channel: string, afterId: string, handler: (d: Delivery) => Promise<void>): Promise<Closer> {
    const name = canonicalChannel(channel);
    // The channel's tails share one replay memory, keyed by the entry that first carried an id.
    let shared = this.#tailGuards.get(name);
    if (!shared) this.#tailGuards.set(name, (shared = { guard: new InboundGuard(() => this.#ring, (ch) => this.policyFor(ch), this.#opts.replayCacheSize, this.#opts.metrics, this.#log), readers: 0 }));
    const { guard } = shared;
    shared.readers++;
    let closer: Closer;
    try {
      // A batch read again after a failed handler resumes after what this reader was handed.
      let handed = "0-0";
      closer = await this.#opts.backend.tail(name, afterId, async (entries: LogEntry[]) => {
        for (const e of entries) {
          if (!entryBefore(handed, e.id)) continue;
          const a = guard.admitEntry(name, e.raw, e.refTimeMs, e.id);
          if (a.ok) await handler(new VerifiedDelivery(a.value, e.id));
          handed = e.id;
        }
      });
    } catch (err) {
      this.#leaveTail(name, shared);
      throw err;
    }
    return this.#track({
      close: async () => {
        await closer.close();
        this.#leaveTail(name, shared);
      },
    });
  }

  #leaveTail(name: string, shared: { readers: number }): void {
    if (--shared.readers === 0 && this.#tailGuards.get(name) === shared) this.#tailGuards.delete(name);
  }

  #track(closer: Closer): Closer {
    const c: Closer = {
      close: async () => {
        this.#closers.delete(c);
        await closer.close();
      },
    };
    this.#closers.add(c);
    return c;
  }

  async ready() {
    return this.#opts.backend.ready(this.durableChannels());
  }

  /** Stops subscriptions (acknowledging what was handled), flushes the spool if it can, closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#flushTimer);
    await Promise.all([...this.#closers].map((c) => c.close().catch(() => {})));
    for (const t of this.#taps.values()) await (await t.closer).close().catch(() => {});
    this.#taps.clear();
    if (this.#spool?.size && this.#opts.backend.isReady()) await this.flushSpool();
    this.#spool?.close();
    await this.#opts.backend.close();
    this.#journal?.close();
  }
}

/** The message as the spool keeps it: with the meshMeta it was sealed with, so its event id survives. */
function withMeta(message: JsonObject, meshMeta: JsonObject): JsonObject {
  return message["meshMeta"] === meshMeta ? message : { ...message, meshMeta };
}
