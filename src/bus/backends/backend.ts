import type { Logger } from "../../log/index.ts";

/** What the bus needs from a transport: pub/sub for best-effort channels, a log for durable ones. */

export class BackendUnavailableError extends Error {
  override name = "BackendUnavailableError";
}

/**
 * One entry of a durable channel's log. `refTimeMs` is when it entered the log. An entry
 * without the message field (written by something else) arrives with `raw` "" and is refused
 * like any malformed message.
 */
export interface LogEntry {
  id: string;
  raw: string;
  refTimeMs: number;
}

export interface ConsumerOptions {
  group: string;
  consumer: string;
  /** Entries a consumer leaves unacknowledged this long are taken over by another. */
  claimIdleMs: number;
  /** After this many failed handler runs an entry goes to the dead-letter log. */
  maxAttempts: number;
  batch: number;
  /**
   * Runs after handlers took entries and before those are acknowledged: what they deferred
   * (one disk write for a batch instead of one per entry) is done here. A throw leaves them
   * unacknowledged, to be delivered again.
   */
  settle?: () => void;
}

/**
 * What became of an entry: "ack" (handled, or a duplicate), "retry" (redeliver it, up to
 * maxAttempts, then dead-letter it), "wait" (our side has no room for it now, a full queue:
 * stop reading and deliver it again later, with no attempt counted, so backpressure never
 * dead-letters a message), or `{dead: reason}` (refused: to the dead-letter log with the
 * reason, then acknowledged, so one poison entry never holds up the ones behind it).
 */
export type Verdict = "ack" | "retry" | "wait" | { dead: string };

/** How long a consumer told to "wait" pauses before reading again: from WAIT_MIN_MS, doubling to WAIT_MAX_MS. */
export const WAIT_MIN_MS = 100;
export const WAIT_MAX_MS = 2_000;
/** Runs on each entry in log order. A throw counts as "retry". */
export type EntryHandler = (entry: LogEntry) => Promise<Verdict>;

/** Suffix of a durable channel's dead-letter log: `<channel>:dead`. */
export const DEAD_SUFFIX = ":dead";

export interface Closer {
  close(): Promise<void>;
}

export interface ReadyState {
  ok: boolean;
  detail: string;
  /** Warnings that do not make the appliance unready (e.g. a durable channel without AOF). */
  warnings: string[];
}

/** A message published in-process and not yet sealed (see src/bus/local.ts): `wire()` seals it. */
export interface InProcessMessage {
  wire(): string;
}

/** What a pub/sub subscriber is handed: the wire string, or an in-process message (embedded backend). */
export type Inbound = string | InProcessMessage;

export interface BusBackend {
  readonly kind: "embedded" | "redis";
  start(): Promise<void>;
  close(): Promise<void>;
  /** True while publishes can be sent now. */
  isReady(): boolean;
  /** Registers a callback run each time the backend becomes ready again. */
  onReady(cb: () => void): void;
  ready(durableChannels: readonly string[]): Promise<ReadyState>;

  /** Best effort; throws BackendUnavailableError when it cannot send now. */
  publish(wireChannel: string, raw: string): Promise<void>;
  /**
   * Present on a backend that lives in this process: hands the message to subscribers without
   * sealing it (they call `wire()` if they need it).
   */
  publishLocal?(wireChannel: string, m: InProcessMessage): void;
  /** Calls `onMessage` for each message on the listed wire channels until closed. */
  subscribe(wireChannels: readonly string[], onMessage: (wireChannel: string, raw: Inbound) => void): Promise<Closer>;

  /** Appends to a durable channel's log in order; returns the entry ids. */
  append(channel: string, raws: readonly string[]): Promise<string[]>;
  /**
   * Appends entries (to one or more durable logs) and sets `mark.field` of the hash `mark.hash`
   * in one atomic step: a receiver's memory of what it delivered can never disagree with the
   * logs (the WAN's exactly-once). The embedded backend keeps marks in memory.
   */
  appendMarked(entries: readonly { channel: string; raw: string }[], mark: Mark): Promise<void>;
  /**
   * Every field of a mark hash. `channels`: the durable channels the marks were written with
   * (on a Redis Cluster each stream keeps its marks beside it, in its own hash slot).
   */
  readMarks(hash: string, channels?: readonly string[]): Promise<Map<string, string>>;
  /**
   * Appends entries unless `once.seq` is already recorded in the sequence set at
   * `once.hash`/`once.field` (ranges, src/bus/seq-set.ts), and records it, in one atomic step:
   * false when it was there (nothing appended). Replicas sharing the set never lose each
   * other's records. On a Redis Cluster the step is one per stream, with that stream's own
   * sequence set beside it: an entry is appended once per stream even when a retry finds some
   * streams done and others not; true when any stream took its entries.
   */
  appendOnce(entries: readonly { channel: string; raw: string }[], once: { hash: string; field: string; seq: number }): Promise<boolean>;
  consume(channel: string, opts: ConsumerOptions, handle: EntryHandler): Promise<Closer>;
  /** Reads entries after `afterId` ("$" for only new ones), without a group: for resumable streams. */
  tail(channel: string, afterId: string, onEntries: (entries: LogEntry[]) => Promise<void>): Promise<Closer>;
  /** The consumer groups of a durable channel's log, with what each has not yet taken. */
  groups(channel: string): Promise<GroupInfo[]>;
  /** Removes a consumer group (its position and pending entries; the log itself stays). */
  dropGroup(channel: string, group: string): Promise<void>;
}

export interface Mark {
  hash: string;
  field: string;
  value: string;
}

export interface GroupInfo {
  name: string;
  /** Delivered to the group, not yet acknowledged. */
  pending: number;
  /** Entries not yet delivered to the group (null when the server cannot tell). */
  lag: number | null;
}

/** Stream entry ids are `<ms>-<seq>`; their time part is when the entry entered the log. */
export function entryTime(id: string): number {
  const dash = id.indexOf("-");
  return Number(dash < 0 ? id : id.slice(0, dash));
}

/** Log entry ids ("ms-seq", as Redis Streams number them) in log order. */
export function entryBefore(a: string, b: string): boolean {
  const [am, as] = splitEntryId(a);
  const [bm, bs] = splitEntryId(b);
  return am < bm || (am === bm && as < bs);
}

function splitEntryId(id: string): [number, number] {
  const dash = id.indexOf("-");
  return dash < 0 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

/**
 * Calls an inbound callback so that nothing it throws escapes into the transport's event
 * handler, where it would end the process (one hostile PUBLISH must not crash the appliance).
 */
export function runInbound(fn: (ch: string, raw: Inbound) => void, ch: string, raw: Inbound, log: Logger): void {
  try {
    fn(ch, raw);
  } catch (err) {
    log.limited("inbound-callback", "error", "inbound message handler failed", { channel: ch, error: (err as Error)?.message ?? String(err) });
  }
}
