/**
 * The Redis transport: PUBLISH/SUBSCRIBE for best-effort channels, Streams with consumer groups
 * for durable ones. One connection sends, one listens to pub/sub, one carries the stream
 * readers' own reads (which never block), and each blocked read has its own, since a blocked
 * connection can carry nothing else: one per waiter (waiter.ts), that is per group member and one
 * for all tails, per hash slot on a Cluster.
 */
import type { Cluster, RedisOptions } from "ioredis";
import type { Logger } from "../../../log/index.ts";
import { keySlot, masterOf, redisClient, shut, type RedisClient, type RedisTarget } from "../../../redis/index.ts";
import { SEQ_WINDOW, SeqMemory } from "../../seq-set.ts";
import {
  BackendUnavailableError,
  runInbound,
  sleep,
  type BusBackend,
  type Closer,
  type ConsumerOptions,
  type EntryHandler,
  type GroupInfo,
  type LogEntry,
  type Mark,
  type ReadyState,
  type Inbound,
} from "../backend.ts";
import { Coalescer } from "../coalesce.ts";
import { StreamConsumer } from "./consumer.ts";
import { unavailable } from "./errors.ts";
import { pairs } from "./replies.ts";
import { besideKey, withScripts, type Scripts } from "./scripts.ts";
import { StreamTail } from "./tail.ts";
import { StreamWaiter, type WaiterKind } from "./waiter.ts";

export interface RedisBackendOptions extends RedisTarget {
  /** Prefix of stream keys: `<prefix><channel>`. */
  streamPrefix: string;
  streamMaxLen: number;
  blockMs: number;
  connectTimeoutMs: number;
  /** WAIT for this many replicas after a durable write (0: no wait), up to waitTimeoutMs. */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  log: Logger;
}

/** Entries a tail reads at a time. */
const TAIL_BATCH = 256;
/** Per batch of coalesced publishes: at most this many messages, and about this many bytes. */
const BATCH_ITEMS = 512;
const BATCH_BYTES = 4 * 1024 * 1024;

export class RedisBackend implements BusBackend {
  readonly kind = "redis" as const;
  readonly #cmd: RedisClient;
  /** The command connection, with the scripts defined on it. */
  readonly #scripts: Scripts;
  readonly #sub: RedisClient;
  readonly #blocking = new Set<RedisClient>();
  readonly #readyCbs: (() => void)[] = [];
  readonly #subHandlers = new Map<string, Set<(ch: string, raw: Inbound) => void>>();
  /** The stream readers' own reads (durable consumers, with their acknowledgements, and tails), made with the first. */
  #reads: RedisClient | null = null;
  /** By group member, and one for the tails (each per hash slot on a Cluster): one blocked read for their idle streams. */
  readonly #waiters = new Map<string, StreamWaiter>();
  #closed = false;
  /** Durable publishes of one tick, per stream: one script call appends them all. */
  readonly #appends = new Coalescer<string, string>((key, raws) => this.#appendMany(key, raws), BATCH_ITEMS, BATCH_BYTES, (raw) => raw.length);
  /** Best-effort publishes of one tick: one script call publishes them all. */
  readonly #publishes = new Coalescer<[string, string], void>((_, pairs) => this.#publishMany(pairs), BATCH_ITEMS, BATCH_BYTES, (p) => p[1].length);

  constructor(private readonly o: RedisBackendOptions) {
    this.#cmd = this.#connect("cmd", {
      // Fail fast while disconnected so durable publishes go to the spool in order instead of
      // waiting in ioredis' memory, and never resend: the spool owns retries.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
    });
    this.#cmd.on("ready", () => {
      for (const cb of this.#readyCbs) cb();
    });
    // Sent by its SHA once loaded (EVALSHA, reloaded after a Redis restart): not ~1.5 KB of
    // script with every frame.
    this.#scripts = withScripts(this.#cmd);
    this.#sub = this.#connect("sub", { autoResubscribe: true, maxRetriesPerRequest: null });
    this.#sub.on("message", (ch: string, raw: string) => {
      const set = this.#subHandlers.get(ch);
      if (set) for (const fn of set) runInbound(fn, ch, raw, this.o.log);
    });
  }

  #connect(role: string, extra: RedisOptions): RedisClient {
    const r = redisClient(this.o, {
      lazyConnect: true,
      connectTimeout: this.o.connectTimeoutMs,
      retryStrategy: (times) => (this.#closed ? null : Math.min(100 * times, 2_000)),
      ...extra,
    });
    r.on("ready", () => this.o.log.debug("redis connection ready", { role }));
    r.on("end", () => this.o.log.debug("redis connection ended", { role }));
    // Without a listener, ioredis' error events would crash the process.
    r.on("error", (err: Error) => this.o.log.limited(`redis-${role}`, "warn", "redis connection error", { role, error: err.message }));
    return r;
  }

  async start(): Promise<void> {
    // Start even when Redis is down: the appliance must come up and reconnect on its own.
    for (const r of [this.#cmd, this.#sub]) r.connect().catch(() => {});
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiters.values()) await w.close();
    this.#waiters.clear();
    const all = [this.#cmd, this.#sub, ...this.#blocking];
    await Promise.all(all.map((r) => shut(r)));
  }

  isReady(): boolean {
    return this.#cmd.status === "ready";
  }

  onReady(cb: () => void): void {
    this.#readyCbs.push(cb);
  }

  async ready(durableChannels: readonly string[]): Promise<ReadyState> {
    if (!this.isReady()) return { ok: false, detail: `redis not connected (${this.#cmd.status})`, warnings: [] };
    try {
      const info = (await this.#cmd.info("persistence")) as string;
      const warnings: string[] = [];
      if (durableChannels.length > 0 && !/aof_enabled:1/.test(info)) {
        warnings.push(
          `durable channels (${durableChannels.join(", ")}) on a Redis without AOF persistence: a Redis restart loses them`,
        );
      }
      return { ok: true, detail: "redis connected", warnings };
    } catch (err) {
      return { ok: false, detail: `redis: ${(err as Error).message}`, warnings: [] };
    }
  }

  async publish(wireChannel: string, raw: string): Promise<void> {
    try {
      await this.#publishes.add("", [wireChannel, raw]);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async #publishMany(pairs: [string, string][]): Promise<void[]> {
    const args: string[] = [];
    for (const [ch, raw] of pairs) args.push(ch, raw);
    await this.#scripts.piloxPublishMany(...args);
    return pairs.map(() => undefined);
  }

  async #appendMany(key: string, raws: string[]): Promise<string[]> {
    return this.#replicated(key, () => this.#scripts.piloxAppendMany(1, key, String(this.o.streamMaxLen), ...raws));
  }

  get #waits(): boolean {
    return (this.o.waitReplicas ?? 0) > 0;
  }

  /**
   * One step on the keys of one slot, then, with wait_replicas, a WAIT on the connection that
   * carried it (so it covers that write): the step's reply. Too few replicas in time is
   * BackendUnavailableError: the writer retries, and each step is idempotent for it.
   */
  async #replicated<T>(key: string, step: () => Promise<T>): Promise<T> {
    const reply = await step();
    if (this.#waits) await this.#waitAfter(key);
    return reply;
  }

  /** WAIT on the connection that took writes to `key` (one server or Sentinel: the command connection). */
  async #waitAfter(key: string): Promise<void> {
    const n = this.o.waitReplicas ?? 0;
    const timeout = this.o.waitTimeoutMs ?? 1_000;
    const node = this.o.cluster ? masterOf(this.#cmd as Cluster, key) : this.#cmd;
    // A connection the cluster client dropped (its node was replaced) would queue the WAIT for ever.
    if (!node || node.status !== "ready") throw new BackendUnavailableError(`redis: no connected master known for ${key} (the cluster is changing)`);
    let acked: unknown;
    try {
      acked = await Promise.race([node.call("WAIT", n, timeout), sleep(timeout + 1_000).then(() => Promise.reject(new BackendUnavailableError(`redis: no answer to WAIT within ${timeout + 1_000} ms`)))]);
    } catch (err) {
      throw unavailable(err);
    }
    if (Number(acked) < n) throw new BackendUnavailableError(`redis: ${Number(acked)} of ${n} replicas (bus.redis.wait_replicas) had the write after ${timeout} ms`);
  }

  async subscribe(wireChannels: readonly string[], onMessage: (ch: string, raw: Inbound) => void): Promise<Closer> {
    const fresh: string[] = [];
    for (const ch of wireChannels) {
      let set = this.#subHandlers.get(ch);
      if (!set) {
        this.#subHandlers.set(ch, (set = new Set()));
        fresh.push(ch);
      }
      set.add(onMessage);
    }
    // With autoResubscribe, ioredis renews these after every reconnect. While Redis is away the
    // SUBSCRIBE waits in ioredis' queue: wait for it a bounded time only, so a start or a
    // reload during an outage does not hang.
    if (fresh.length) {
      const confirmed = this.#sub.subscribe(...fresh).catch((err: Error) => {
        this.o.log.limited("redis-subscribe", "warn", "subscribe failed; it is renewed on reconnect", { error: err.message });
      });
      await Promise.race([confirmed, sleep(this.o.connectTimeoutMs)]);
    }
    return {
      close: async () => {
        const gone: string[] = [];
        for (const ch of wireChannels) {
          const set = this.#subHandlers.get(ch);
          set?.delete(onMessage);
          if (set && set.size === 0) {
            this.#subHandlers.delete(ch);
            gone.push(ch);
          }
        }
        if (gone.length && !this.#closed) await this.#sub.unsubscribe(...gone).catch(() => {});
      },
    };
  }

  key(channel: string): string {
    return this.o.streamPrefix + channel;
  }

  /** Durable entries grouped by their stream's key, in order within each. */
  #byStream(entries: readonly { channel: string; raw: string }[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const e of entries) {
      const key = this.key(e.channel);
      const list = out.get(key);
      if (list) list.push(e.raw);
      else out.set(key, [e.raw]);
    }
    return out;
  }

  async appendMarked(entries: readonly { channel: string; raw: string }[], mark: Mark): Promise<void> {
    if (this.o.cluster) return this.#appendMarkedPerStream(entries, mark);
    const m = this.#cmd.multi();
    for (const e of entries) m.xadd(this.key(e.channel), "MAXLEN", "~", this.o.streamMaxLen, "*", "m", e.raw);
    m.hset(mark.hash, mark.field, mark.value);
    let res: [Error | null, unknown][] | null;
    try {
      res = await m.exec();
    } catch (err) {
      throw unavailable(err);
    }
    if (!res) throw new BackendUnavailableError("redis transaction aborted");
    for (const [err] of res) if (err) throw unavailable(err);
    if (this.#waits) await this.#waitAfter(mark.hash);
  }


  /** On a Cluster: each stream's entries and its mark (beside it, in its slot) in one step. */
  async #appendMarkedPerStream(entries: readonly { channel: string; raw: string }[], mark: Mark): Promise<void> {
    const streams = this.#byStream(entries);
    const max = String(this.o.streamMaxLen);
    try {
      if (streams.size === 0) await this.#cmd.hset(mark.hash, mark.field, mark.value);
      await Promise.all([...streams].map(([key, raws]) => this.#replicated(key, () => this.#scripts.piloxAppendMarked(2, besideKey(mark.hash, key), key, mark.field, mark.value, max, ...raws))));
    } catch (err) {
      throw unavailable(err);
    }
  }

  async appendOnce(entries: readonly { channel: string; raw: string }[], once: { hash: string; field: string; seq: number }): Promise<boolean> {
    if (this.o.cluster) return this.#appendOncePerStream(entries, once);
    const keys = [...new Set(entries.map((e) => this.key(e.channel)))];
    const args: (string | number)[] = [once.field, String(once.seq), String(SEQ_WINDOW), String(this.o.streamMaxLen)];
    for (const e of entries) args.push(String(keys.indexOf(this.key(e.channel)) + 2), e.raw);
    try {
      const fresh = (await this.#scripts.piloxAppendOnce(1 + keys.length, once.hash, ...keys, ...args)) === 1;
      // Also when it was seen: that earlier write may not have reached a replica yet.
      if (this.#waits) await this.#waitAfter(once.hash);
      return fresh;
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * On a Cluster the streams of a frame live on different nodes, so no one step covers them:
   * the sender's memory (one hash, one slot) says whether the frame is a repeat; each stream
   * then takes its entries in its own step, remembering the sequence beside it (same slot)
   * until the memory has it; the memory records it last, and the streams forget it. A crash or
   * a failover anywhere in between leaves a retry that appends nothing twice: a stream that
   * took the frame remembers it, and one that did not takes it then. (Sequences only in the
   * memory keep it small: one range while frames come in order; per-stream memories would
   * fragment, each seeing only the frames that touch it.)
   */
  async #appendOncePerStream(entries: readonly { channel: string; raw: string }[], once: { hash: string; field: string; seq: number }): Promise<boolean> {
    const seq = String(once.seq);
    const head = [once.field, seq, String(SEQ_WINDOW), String(this.o.streamMaxLen)];
    const streams = this.#byStream(entries);
    const recent = (key: string) => besideKey(`${once.hash}:${once.field}`, key);
    try {
      if (SeqMemory.parse(await this.#cmd.hget(once.hash, once.field)).seen(once.seq)) return false;
      const took = await Promise.all(
        [...streams].map(([key, raws]) => this.#replicated(key, () => this.#scripts.piloxStreamOnce(2, recent(key), key, seq, String(SEQ_WINDOW), String(this.o.streamMaxLen), ...raws))),
      );
      const recorded = (await this.#replicated(once.hash, () => this.#scripts.piloxAppendOnce(1, once.hash, ...head))) === 1;
      await Promise.all([...streams.keys()].map((key) => this.#cmd.zrem(recent(key), seq).catch(() => {})));
      return streams.size === 0 ? recorded : took.some((t) => t === 1);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async readMarks(hash: string, channels: readonly string[] = []): Promise<Map<string, string>> {
    try {
      const out = new Map(Object.entries(await this.#cmd.hgetall(hash)));
      if (this.o.cluster) {
        for (const ch of new Set(channels)) for (const [k, v] of Object.entries(await this.#cmd.hgetall(besideKey(hash, this.key(ch))))) out.set(k, v);
      }
      return out;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async append(channel: string, raws: readonly string[]): Promise<string[]> {
    const key = this.key(channel);
    // They join the other publishes of this tick: one script call per batch, in order.
    try {
      return await Promise.all(raws.map((raw) => this.#appends.add(key, raw)));
    } catch (err) {
      throw unavailable(err);
    }
  }

  #blockingConnection(role: string): RedisClient {
    const r = this.#connect(role, { maxRetriesPerRequest: null, enableOfflineQueue: true });
    r.connect().catch(() => {});
    this.#blocking.add(r);
    return r;
  }

  async #release(r: RedisClient): Promise<void> {
    this.#blocking.delete(r);
    await shut(r);
  }

  /** The waiter of a group member's consumers, or of the tails, for `key` (its hash slot on a Cluster). */
  #waiterFor(key: string, kind: WaiterKind, batch: number): [string, StreamWaiter] {
    const slot = this.o.cluster ? keySlot(key) : -1;
    const id = JSON.stringify([kind, slot, batch]);
    let w = this.#waiters.get(id);
    if (!w) {
      const cmd = this.#readConnection();
      w = new StreamWaiter({
        ...kind,
        batch,
        blockMs: this.o.blockMs,
        cluster: Boolean(this.o.cluster),
        cmd,
        connect: () => this.#blockingConnection(`waiter:${kind.kind === "group" ? kind.group : "tails"}`),
        release: (r) => this.#release(r),
        log: this.o.log,
      });
      this.#waiters.set(id, w);
    }
    return [id, w];
  }

  /** The readers' shared connection: their reads never block. */
  #readConnection(): RedisClient {
    return (this.#reads ??= this.#blockingConnection("stream-reads"));
  }

  async #leave(id: string, w: StreamWaiter): Promise<void> {
    if (w.size === 0 && this.#waiters.get(id) === w) {
      this.#waiters.delete(id);
      await w.close();
    }
  }

  async consume(channel: string, opts: ConsumerOptions, handle: EntryHandler): Promise<Closer> {
    const key = this.key(channel);
    const [id, waiter] = this.#waiterFor(key, { kind: "group", group: opts.group, consumer: opts.consumer, claimIdleMs: opts.claimIdleMs }, opts.batch);
    const consumer = new StreamConsumer(
      { channel, key, conn: this.#readConnection(), waiter, streamMaxLen: this.o.streamMaxLen, connectTimeoutMs: this.o.connectTimeoutMs, log: this.o.log },
      opts,
      handle,
    );
    await consumer.start();
    return {
      close: async () => {
        await consumer.close();
        await this.#leave(id, waiter);
      },
    };
  }

  async groups(channel: string): Promise<GroupInfo[]> {
    let reply: unknown;
    try {
      reply = await this.#cmd.call("XINFO", "GROUPS", this.key(channel));
    } catch (err) {
      if (/no such key/i.test((err as Error).message)) return [];
      throw unavailable(err);
    }
    // Each group is a flat [name, value, …] list over RESP2, a map (object) over RESP3.
    return (reply as unknown[]).map((g) => {
      const f: Record<string, unknown> = Array.isArray(g) ? Object.fromEntries(pairs(g)) : (g as Record<string, unknown>);
      const lag = f["lag"];
      return { name: String(f["name"]), pending: Number(f["pending"] ?? 0), lag: typeof lag === "number" ? lag : null };
    });
  }

  async dropGroup(channel: string, group: string): Promise<void> {
    try {
      await this.#cmd.xgroup("DESTROY", this.key(channel), group);
    } catch (err) {
      if (/no such key/i.test((err as Error).message)) return;
      throw unavailable(err);
    }
  }

  async tail(channel: string, afterId: string, onEntries: (entries: LogEntry[]) => Promise<void>): Promise<Closer> {
    const key = this.key(channel);
    const [id, waiter] = this.#waiterFor(key, { kind: "tail" }, TAIL_BATCH);
    const tail = new StreamTail({ channel, key, conn: this.#readConnection(), cmd: this.#cmd, waiter, batch: TAIL_BATCH, log: this.o.log }, afterId, onEntries);
    await tail.start();
    return {
      close: async () => {
        await tail.close();
        await this.#leave(id, waiter);
      },
    };
  }
}
