/**
 * The Redis transport: PUBLISH/SUBSCRIBE for best-effort channels, Streams with consumer groups
 * for durable ones. One connection sends, one listens to pub/sub, and every blocking reader
 * (a consumer or a tail) has its own, since a blocked connection can carry nothing else.
 */
import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "../../log/index.ts";
import {
  BackendUnavailableError,
  DEAD_SUFFIX,
  entryTime,
  sleep,
  WAIT_MAX_MS,
  WAIT_MIN_MS,
  type BusBackend,
  type Closer,
  type ConsumerOptions,
  type EntryHandler,
  type GroupInfo,
  type LogEntry,
  type Mark,
  type ReadyState,
  type Verdict,
} from "./backend.ts";
import { runInbound } from "./backend.ts";
import { SEQ_WINDOW } from "../seq-set.ts";
import { Coalescer } from "./coalesce.ts";

/** A connection to one server (directly or through Sentinel) or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: one server by URL, the master that a set of Sentinels names, or a Cluster. */
export interface RedisTarget {
  /** `redis://` or `rediss://` URL (password included); "" with `sentinel`. */
  url: string;
  /** For rediss://: the CA to trust instead of the system's, and a client certificate. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  sentinel?: {
    hosts: { host: string; port: number }[];
    /** The master group name the Sentinels monitor. */
    master: string;
    /** Password of the Sentinels themselves. */
    sentinelPassword?: string;
    /** Password of the Redis servers. */
    password?: string;
    db: number;
  };
  /** Redis Cluster: some of its nodes (the rest are discovered), and the servers' password. */
  cluster?: {
    nodes: { host: string; port: number }[];
    password?: string;
  };
}

/**
 * A client for `t`. Through Sentinel, ioredis asks the Sentinels for the current master on
 * every (re)connect, so a failover is followed by reconnecting. A server that answers READONLY
 * (a master demoted while we were connected) makes the client reconnect and find the new one.
 */
export function redisClient(t: RedisTarget, opts: RedisOptions): RedisClient {
  const common: RedisOptions = { reconnectOnError: (err) => (err.message.startsWith("READONLY") ? 1 : false), ...opts };
  if (t.cluster) {
    // Cluster-level options are the cluster client's own; the rest apply to each node's connection.
    const { lazyConnect, enableOfflineQueue, retryStrategy, ...node } = common;
    return new Cluster(t.cluster.nodes, {
      lazyConnect: lazyConnect ?? false,
      enableOfflineQueue: enableOfflineQueue ?? true,
      ...(retryStrategy ? { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null } : {}),
      // Commands go to several nodes: ioredis pipelines per node.
      enableAutoPipelining: true,
      redisOptions: { ...node, ...(t.cluster.password ? { password: t.cluster.password } : {}) },
    });
  }
  if (!t.sentinel) return new Redis(t.url, t.tls ? { ...common, tls: { ...t.tls } } : common);
  const sn = t.sentinel;
  return new Redis({
    ...common,
    sentinels: sn.hosts,
    name: sn.master,
    db: sn.db,
    ...(sn.password ? { password: sn.password } : {}),
    ...(sn.sentinelPassword ? { sentinelPassword: sn.sentinelPassword } : {}),
  });
}

export interface RedisBackendOptions extends RedisTarget {
  /** Prefix of stream keys: `<prefix><channel>`. */
  streamPrefix: string;
  streamMaxLen: number;
  blockMs: number;
  connectTimeoutMs: number;
  log: Logger;
}

type Entries = [string, string[] | null][];

/**
 * The entries of a one-stream XREAD/XREADGROUP reply. Over RESP2 it is [[key, entries]];
 * over RESP3 (ioredis 6's default; we pin 5, whose RESP2 parser decodes stream entries in about
 * half the CPU) the map arrives flattened as [key, entries].
 */
function firstStreamEntries(reply: unknown): Entries {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  if (Array.isArray(reply[0])) return (reply[0][1] ?? []) as Entries;
  return (reply[1] ?? []) as Entries;
}

function isConnectionError(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|connect|Reached the max retries|LOADING|MASTERDOWN|READONLY/i.test(msg);
}

/**
 * appendOnce in one step: is ARGV[2] in the sequence set (ranges {"r":[[lo,hi],…]}, the window
 * of SeqMemory below its highest)? If not, XADD each entry and record it. Integers stay below
 * 2^53 and are written with %d (cjson would round them to 14 digits).
 */
const APPEND_ONCE = `
local seq = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local r = {}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, t = pcall(cjson.decode, cur)
  if ok and type(t) == 'table' and type(t.r) == 'table' then
    for _, x in ipairs(t.r) do
      if type(x) == 'table' and type(x[1]) == 'number' and type(x[2]) == 'number' and x[1] <= x[2] then r[#r + 1] = { x[1], x[2] } end
    end
    table.sort(r, function(a, b) return a[1] < b[1] end)
  end
end
local n = #r
if n > 0 then
  if seq <= r[n][2] - window then return 0 end
  for i = n, 1, -1 do
    if seq > r[i][2] then break end
    if seq >= r[i][1] then return 0 end
  end
end
for i = 5, #ARGV, 2 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[i + 1])
end
local at = n + 1
for i = 1, n do if r[i][1] > seq then at = i break end end
local prev = r[at - 1]
local nxt = r[at]
if prev and prev[2] + 1 == seq then
  prev[2] = seq
  if nxt and nxt[1] == seq + 1 then prev[2] = nxt[2] table.remove(r, at) end
elseif nxt and nxt[1] == seq + 1 then nxt[1] = seq
else table.insert(r, at, { seq, seq }) end
local floor = r[#r][2] - window
local parts = {}
for _, x in ipairs(r) do if x[2] > floor then parts[#parts + 1] = string.format('[%d,%d]', x[1], x[2]) end end
redis.call('HSET', KEYS[1], ARGV[1], '{"r":[' .. table.concat(parts, ',') .. ']}')
return 1
`;

/** XADD of each ARGV[2..] to KEYS[1] (ARGV[1]: MAXLEN ~), in order; the entry ids. */
const APPEND_MANY = `
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[i]) end
return ids
`;

/** PUBLISH of each (channel, message) pair of ARGV, in order. */
const PUBLISH_MANY = `
for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return 1
`;

/** The commands defineCommand adds (ioredis types them only by declaration merging). */
interface Scripts {
  piloxAppendOnce(numKeys: number, ...a: (string | number)[]): Promise<unknown>;
  piloxAppendMany(numKeys: number, ...a: string[]): Promise<string[]>;
  piloxPublishMany(...a: string[]): Promise<unknown>;
}

/** Per batch of coalesced publishes: at most this many messages, and about this many bytes. */
const BATCH_ITEMS = 512;
const BATCH_BYTES = 4 * 1024 * 1024;

export class RedisBackend implements BusBackend {
  readonly kind = "redis" as const;
  readonly #cmd: RedisClient;
  readonly #sub: RedisClient;
  readonly #blocking = new Set<RedisClient>();
  readonly #readyCbs: (() => void)[] = [];
  readonly #subHandlers = new Map<string, Set<(ch: string, raw: string) => void>>();
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
    this.#cmd.defineCommand("piloxAppendOnce", { lua: APPEND_ONCE });
    this.#cmd.defineCommand("piloxAppendMany", { lua: APPEND_MANY });
    this.#cmd.defineCommand("piloxPublishMany", { numberOfKeys: 0, lua: PUBLISH_MANY });
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

  /** The command connection with the scripts defined on it in the constructor. */
  get #scripts(): Scripts {
    return this.#cmd as unknown as Scripts;
  }

  async publish(wireChannel: string, raw: string): Promise<void> {
    try {
      await this.#publishes.add("", [wireChannel, raw]);
    } catch (err) {
      if (isConnectionError(err)) throw new BackendUnavailableError(`redis unavailable: ${(err as Error).message}`);
      throw err;
    }
  }

  async #publishMany(pairs: [string, string][]): Promise<void[]> {
    const args: string[] = [];
    for (const [ch, raw] of pairs) args.push(ch, raw);
    await this.#scripts.piloxPublishMany(...args);
    return pairs.map(() => undefined);
  }

  async #appendMany(key: string, raws: string[]): Promise<string[]> {
    return this.#scripts.piloxAppendMany(1, key, String(this.o.streamMaxLen), ...raws);
  }

  async subscribe(wireChannels: readonly string[], onMessage: (ch: string, raw: string) => void): Promise<Closer> {
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

  async appendMarked(entries: readonly { channel: string; raw: string }[], mark: Mark): Promise<void> {
    const m = this.#cmd.multi();
    for (const e of entries) m.xadd(this.key(e.channel), "MAXLEN", "~", this.o.streamMaxLen, "*", "m", e.raw);
    m.hset(mark.hash, mark.field, mark.value);
    let res: [Error | null, unknown][] | null;
    try {
      res = await m.exec();
    } catch (err) {
      throw isConnectionError(err) ? new BackendUnavailableError((err as Error).message) : err;
    }
    if (!res) throw new BackendUnavailableError("redis transaction aborted");
    for (const [err] of res) if (err) throw isConnectionError(err) ? new BackendUnavailableError(err.message) : err;
  }

  async appendOnce(entries: readonly { channel: string; raw: string }[], once: { hash: string; field: string; seq: number }): Promise<boolean> {
    const keys = [...new Set(entries.map((e) => this.key(e.channel)))];
    const args: (string | number)[] = [once.field, String(once.seq), String(SEQ_WINDOW), String(this.o.streamMaxLen)];
    for (const e of entries) args.push(String(keys.indexOf(this.key(e.channel)) + 2), e.raw);
    try {
      return (await this.#scripts.piloxAppendOnce(1 + keys.length, once.hash, ...keys, ...args)) === 1;
    } catch (err) {
      throw isConnectionError(err) ? new BackendUnavailableError((err as Error).message) : err;
    }
  }

  async readMarks(hash: string): Promise<Map<string, string>> {
    try {
      return new Map(Object.entries(await this.#cmd.hgetall(hash)));
    } catch (err) {
      throw isConnectionError(err) ? new BackendUnavailableError((err as Error).message) : err;
    }
  }

  async append(channel: string, raws: readonly string[]): Promise<string[]> {
    const key = this.key(channel);
    // They join the other publishes of this tick: one script call per batch, in order.
    try {
      return await Promise.all(raws.map((raw) => this.#appends.add(key, raw)));
    } catch (err) {
      throw isConnectionError(err) ? new BackendUnavailableError((err as Error).message) : err;
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

  async #ensureGroup(r: RedisClient, key: string, group: string, from: "$" | "0"): Promise<void> {
    try {
      await r.xgroup("CREATE", key, group, from, "MKSTREAM");
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  async consume(channel: string, opts: ConsumerOptions, handle: EntryHandler): Promise<Closer> {
    const key = this.key(channel);
    const r = this.#blockingConnection(`consumer:${channel}`);
    const attempts = new Map<string, number>();
    /** Entries handled whose XACK has not reached Redis yet (it went away in between). */
    const unacked: string[] = [];
    let closed = false;
    let firstGroup = true;
    let waitMs = WAIT_MIN_MS;
    const { abort, run } = abortable();

    /** Before any XACK: the handlers' deferred writes. If they fail, nothing handled is acknowledged. */
    const settle = () => {
      if (!opts.settle || unacked.length === 0) return;
      try {
        opts.settle();
      } catch (err) {
        unacked.length = 0; // still pending in the group: read again from our history
        throw err;
      }
    };

    const flushAcks = async () => {
      settle();
      while (unacked.length) {
        const ids = unacked.slice(0, 500);
        await run(r.xack(key, opts.group, ...ids));
        unacked.splice(0, ids.length);
      }
    };

    const deadLetter = async (id: string, fields: string[], reason: string, n: number) => {
      const raw = fieldValue(fields, "m");
      // The original entry goes along whole: its message field, or all its fields when it had none.
      const original = raw === undefined ? ["fields", JSON.stringify(fields)] : ["m", raw];
      await run(r.xadd(key + DEAD_SUFFIX, "MAXLEN", "~", this.o.streamMaxLen, "*", ...original, "reason", reason, "failedId", id, "attempts", String(n)));
      attempts.delete(id);
      unacked.push(id);
    };

    const handleEntries = async (entries: Entries): Promise<"ok" | "stop"> => {
      for (const [id, fields] of entries) {
        if (closed) return "stop";
        // A pending entry that was trimmed away comes back with no fields: nothing to deliver.
        if (!fields) {
          unacked.push(id);
          continue;
        }
        let verdict: Verdict;
        try {
          verdict = await handle({ id, raw: fieldValue(fields, "m") ?? "", refTimeMs: entryTime(id) });
        } catch (err) {
          this.o.log.limited(`consume-handler-${key}`, "warn", "durable handler failed", { channel, error: (err as Error)?.message });
          verdict = "retry";
        }
        if (verdict === "ack") {
          attempts.delete(id);
          unacked.push(id);
          waitMs = WAIT_MIN_MS;
          continue;
        }
        if (verdict === "wait") {
          // No room on our side: what came before is settled and acknowledged, this entry and
          // the rest stay pending (no attempt counted) and are read again after a pause.
          this.o.log.limited(`consume-wait-${key}`, "warn", "durable consumer paused: its queue is full", { channel });
          await flushAcks();
          await sleep(waitMs);
          waitMs = Math.min(waitMs * 2, WAIT_MAX_MS);
          return "stop";
        }
        if (verdict !== "retry") {
          await deadLetter(id, fields, verdict.dead, (attempts.get(id) ?? 0) + 1);
          continue;
        }
        const n = (attempts.get(id) ?? 0) + 1;
        attempts.set(id, n);
        if (n >= opts.maxAttempts) {
          // Never drop an accepted message: park it where an operator can inspect and replay it.
          await deadLetter(id, fields, "max_attempts", n);
          continue;
        }
        await flushAcks();
        await sleep(Math.min(100 * 2 ** n, 5_000));
        return "stop"; // re-read our own pending entries so the failed one is retried in order
      }
      // Acknowledged with the next read (see the loop), after the handlers' deferred writes.
      settle();
      return "ok";
    };

    /**
     * The next read, with the acknowledgements it waits on in the same write (one round trip,
     * not two). What the handlers set off goes out before that: an XACK written first put its
     * system call on the path of, say, a WAN frame's publish.
     */
    const read = async (args: (string | number)[]): Promise<unknown> => {
      if (unacked.length === 0 || unacked.length > 500) {
        await flushAcks();
        return run(r.call("XREADGROUP", ...args));
      }
      // handleEntries settled the batch already.
      await new Promise((done) => setImmediate(done));
      const ids = unacked.slice();
      const replies = (await run(r.pipeline().xack(key, opts.group, ...ids).call("XREADGROUP", ...args).exec())) ?? [];
      const [ackErr] = replies[0] ?? [new Error("no reply to XACK")];
      if (ackErr) throw ackErr; // still in unacked: sent again (what this read got is re-read from our history)
      unacked.splice(0, ids.length);
      const [readErr, reply] = replies[1] ?? [new Error("no reply to XREADGROUP")];
      if (readErr) throw readErr;
      return reply;
    };

    const loop = async () => {
      let pendingCursor: string | null = "0";
      let lastClaim = Date.now();
      let backoff = 100;
      while (!closed) {
        try {
          if (firstGroup) {
            await run(this.#ensureGroup(r, key, opts.group, "$"));
            firstGroup = false;
          }
          if (Date.now() - lastClaim > opts.claimIdleMs / 2) {
            await flushAcks();
            lastClaim = Date.now();
            // Entries another consumer of our group took and never acknowledged.
            const claimed = (await run(r.call("XAUTOCLAIM", key, opts.group, opts.consumer, opts.claimIdleMs, "0-0", "COUNT", opts.batch))) as [string, Entries, string[]];
            if (claimed[1].length) await handleEntries(claimed[1]);
          }
          const from = pendingCursor ?? ">";
          const entries = firstStreamEntries(
            await read([
              "GROUP", opts.group, opts.consumer,
              "COUNT", opts.batch,
              ...(pendingCursor === null ? ["BLOCK", this.o.blockMs] : []),
              "STREAMS", key, from,
            ]),
          );
          backoff = 100;
          if (pendingCursor !== null) {
            // Our own history first: delivered before a restart or a failure, never acknowledged.
            if (entries.length === 0) {
              pendingCursor = null;
              continue;
            }
            pendingCursor = entries[entries.length - 1]![0];
          }
          if ((await handleEntries(entries)) === "stop") pendingCursor = "0";
        } catch (err) {
          if (closed) break;
          const msg = (err as Error).message;
          if (/NOGROUP/.test(msg)) {
            // The stream or group vanished (a Redis without persistence restarted): recreate
            // it from the start of whatever the stream now holds.
            await run(this.#ensureGroup(r, key, opts.group, "0")).catch(() => {});
          } else {
            this.o.log.limited(`consume-${key}`, "warn", "durable consumer waiting for redis", { channel, error: msg });
          }
          pendingCursor = "0";
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 2_000);
        }
      }
    };
    // Create the group before returning, so what is published after subscribe() is kept for
    // it; when Redis is away, the loop creates it once it can.
    try {
      await Promise.race([this.#ensureGroup(r, key, opts.group, "$").then(() => (firstGroup = false)), sleep(this.o.connectTimeoutMs)]);
    } catch {
      /* the loop retries */
    }
    const done = loop();
    return {
      close: async () => {
        closed = true;
        abort();
        r.disconnect(); // interrupts a blocked XREADGROUP; unacknowledged entries stay pending
        await done;
        try {
          settle();
        } catch (err) {
          this.o.log.warn("durable handlers could not finish their batch; it is delivered again after restart", { channel, error: (err as Error).message });
        }
        if (unacked.length) {
          // One last try to acknowledge what was handled, so a restart does not redeliver it.
          const c = this.#blockingConnection(`final-ack:${channel}`);
          try {
            await Promise.race([c.xack(key, opts.group, ...unacked), sleep(2_000)]);
          } catch {
            /* left pending: redelivered to this consumer after restart, where handlers see it again */
          }
          await this.#release(c);
        }
        this.#blocking.delete(r);
      },
    };
  }

  async groups(channel: string): Promise<GroupInfo[]> {
    let reply: unknown;
    try {
      reply = await this.#cmd.call("XINFO", "GROUPS", this.key(channel));
    } catch (err) {
      if (/no such key/i.test((err as Error).message)) return [];
      throw isConnectionError(err) ? new BackendUnavailableError((err as Error).message) : err;
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
      throw isConnectionError(err) ? new BackendUnavailableError((err as Error).message) : err;
    }
  }

  async tail(channel: string, afterId: string, onEntries: (entries: LogEntry[]) => Promise<void>): Promise<Closer> {
    const key = this.key(channel);
    const r = this.#blockingConnection(`tail:${channel}`);
    let closed = false;
    const { abort, run } = abortable();
    let cursor = afterId;
    // Pin "$" before answering, so whatever is appended after the caller is told the tail is
    // open is read; if Redis is away now, the loop pins it once Redis answers.
    if (cursor === "$") {
      try {
        // On the command connection: it fails at once while Redis is away, not after it returns.
        const last = (await this.#cmd.xrevrange(key, "+", "-", "COUNT", 1)) as [string, string[]][];
        cursor = last[0]?.[0] ?? "0-0";
      } catch {
        // left as "$": the loop retries.
      }
    }
    const loop = async () => {
      while (!closed) {
        try {
          if (cursor === "$") {
            // Pin "$" to a concrete id so a reconnect does not skip what arrived meanwhile.
            const last = (await run(r.xrevrange(key, "+", "-", "COUNT", 1))) as [string, string[]][];
            cursor = last[0]?.[0] ?? "0-0";
          }
          const entries = firstStreamEntries(await run(r.call("XREAD", "COUNT", 256, "BLOCK", this.o.blockMs, "STREAMS", key, cursor)));
          if (!entries.length) continue;
          const out: LogEntry[] = [];
          for (const [id, fields] of entries) if (fields) out.push({ id, raw: fieldValue(fields, "m") ?? "", refTimeMs: entryTime(id) });
          if (out.length) await onEntries(out);
          // Only past what was handed on: a failure re-reads the batch (the reader's replay
          // memory drops what it already had) instead of skipping the rest of it.
          cursor = entries[entries.length - 1]![0];
        } catch (err) {
          if (closed) break;
          this.o.log.limited(`tail-${key}`, "warn", "stream reader waiting for redis", { channel, error: (err as Error).message });
          await sleep(500);
        }
      }
    };
    const done = loop();
    return {
      close: async () => {
        closed = true;
        abort();
        r.disconnect();
        await done;
        this.#blocking.delete(r);
      },
    };
  }
}

/**
 * QUIT when connected (a clean goodbye), else just drop the socket: a QUIT queued on a
 * connection that will never reconnect would wait forever.
 */
async function shut(r: RedisClient): Promise<void> {
  if (r.status === "ready") await Promise.race([r.quit().catch(() => {}), sleep(1_000)]);
  r.disconnect();
}

/**
 * `run(p)` is `p`, or a rejection once `abort()` is called: closing a reader never waits on a
 * command ioredis keeps queued for a reconnect that will not come. Not Promise.race against one
 * long-lived promise: each race leaves a reaction on it that holds the race's result, so a
 * consumer kept every reply it ever read (measured: 120,000 messages, 58 MB, in a site's heap,
 * and mark-compact pauses of 20–30 ms).
 */
export function abortable(): { abort: () => void; run: <T>(p: Promise<T>) => Promise<T> } {
  const pending = new Set<(err: Error) => void>();
  let aborted = false;
  return {
    abort: () => {
      aborted = true;
      for (const reject of pending) reject(new Error("closed"));
      pending.clear();
    },
    run: <T>(p: Promise<T>): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        if (aborted) {
          p.catch(() => {});
          reject(new Error("closed"));
          return;
        }
        pending.add(reject);
        p.then(
          (v) => {
            pending.delete(reject);
            resolve(v);
          },
          (err: unknown) => {
            pending.delete(reject);
            reject(err);
          },
        );
      }),
  };
}

function pairs(flat: unknown[]): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), flat[i + 1]]);
  return out;
}

function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
