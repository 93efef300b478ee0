/**
 * Where frames from WAN peers enter: this site's durable pull consumer. Each frame is checked
 * (size, attempts, signature and sender, sequence memory, shape), its entries against what the
 * peer may send (federation's accept_channels), then its valid messages are put on the local
 * bus stamped with the peer's origin, atomically with the sender's new sequence memory, and only
 * then acknowledged (`ackAck`). A repeat, however late, is acknowledged and dropped. Anything
 * refused goes to the dead-letter stream with its reason and is terminated: poison never loops.
 * While the local bus cannot take more, nothing is fetched (no delivery attempts burnt).
 */
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import * as v from "valibot";
import { BusUnavailableError, coreOf, traceOf, type JsonObject, type MeshBus, type TraceContext } from "../bus/index.ts";
import { peerId, RELAY_ENTRY, type Peer } from "../federation/index.ts";
import { MAX_JSON_DEPTH, parseJson } from "../json/index.ts";
import { strictObject } from "../schema/index.ts";
import type { Logger } from "../log/index.ts";
import type { WanMetrics } from "../metrics/index.ts";
import { HDR, verifyFrame } from "./frame.ts";
import { readMemoryFile, writeMemoryFile } from "./memory-file.ts";
import { SeqMemory } from "../bus/seq-set.ts";
import { Puller } from "./pull.ts";
import { HEADER_ROOM } from "./streams.ts";
import { frameSubject } from "./subjects.ts";

export interface DeadLetter {
  reason: string;
  detail: string;
  msg: JsMsg;
  /** The entry's index when one entry of a frame is refused, else the whole frame. */
  index?: number;
}

export interface ReceiverDeps {
  bus: () => MeshBus;
  peers: () => ReadonlyMap<string, Peer>;
  ourOrigin: () => string;
  prefix: () => string;
  maxFrameBytes: () => number;
  maxAttempts: () => number;
  /** The consumer's ack_wait: a frame still being written is reported in progress well before it. */
  ackWaitMs: () => number;
  fetchBatch: () => number;
  /** Where the senders' sequence memories live on the bus backend (a hash). */
  marksHash: string;
  /** The embedded backend keeps marks in memory: they are also written here. */
  marksFile?: string;
  deadLetter: (d: DeadLetter) => Promise<void>;
  /** True when the server takes a reason with a term (2.10.4 and later). */
  termWithReason: () => boolean;
  metrics: WanMetrics;
  log: Logger;
}

export interface FrameInput {
  subject: string;
  msgId: string | undefined;
  header: (name: string) => string | undefined;
  data: Uint8Array;
}

interface FrameItem {
  channel: string;
  message: JsonObject;
  index: number;
  trace?: TraceContext;
}

type FrameVerdict = { ok: false; reason: string; detail: string } | { ok: true; peer: Peer; seq: number; items: FrameItem[]; refused: { index: number; reason: string; detail: string }[] };

export type ReplayOutcome = { ok: false; reason: string; detail: string } | { ok: true; delivered: number; refused: { index: number; reason: string; detail: string }[] };

/** One entry of a frame: a relay entry, and the trace context it was published with. */
const FrameEntrySchema = strictObject({ ...RELAY_ENTRY, trace: v.optional(v.unknown()) });

/** A frame's body: `{"v":1,"messages":[…]}` (entries are checked one by one). */
const FrameBody = strictObject({ v: v.literal(1), messages: v.pipe(v.array(v.unknown()), v.minLength(1), v.maxLength(10_000)) });

export interface ReceiverStatus {
  delivered: number;
  duplicates: number;
  deadLettered: number;
  pending: number | null;
  lastFrame: string | null;
}

export class Receiver {
  readonly #pull: Puller;
  readonly #memory = new Map<string, SeqMemory>();
  /** Entry replays done (embedded backend; on Redis they live in the marks hash). */
  readonly #replayed = new Map<string, string>();
  /** Naks given because the local bus could not take the frame (stream seq → count): not attempts. */
  readonly #busNaks = new Map<number, number>();
  #delivered = 0;
  #duplicates = 0;
  #deadCount = 0;
  #pending: number | null = null;
  #lastFrame: number | undefined;

  constructor(private readonly d: ReceiverDeps) {
    this.#pull = new Puller({ what: "WAN frame", ready: () => d.bus().backend.isReady(), batch: d.fetchBatch, handle: (m) => this.#handle(m), log: d.log });
    const kept = readMemoryFile(d.marksFile, "WAN sequence memory", d.log);
    if (kept && typeof kept === "object") {
      for (const [k, text] of Object.entries(kept as Record<string, string>)) {
        if (k.startsWith("replayed:")) this.#replayed.set(k, text);
        else this.#memory.set(k, SeqMemory.parse(text));
      }
    }
  }

  /** Starts (or resumes) consuming with this consumer; undefined while NATS is away. */
  attach(consumer: Consumer | undefined): void {
    this.#pull.attach(consumer);
  }

  start(): void {
    this.#pull.start();
  }

  /** Everything about a frame that does not depend on the stream: signature, shape, entries. */
  #check(f: FrameInput): FrameVerdict {
    if (f.data.length > this.d.maxFrameBytes() + HEADER_ROOM) return { ok: false, reason: "oversized", detail: `${f.data.length} bytes` };
    const check = verifyFrame({
      subject: f.subject,
      msgId: f.msgId,
      header: f.header,
      body: f.data,
      peers: this.d.peers(),
      expectedSubject: (p) => frameSubject(this.d.prefix(), this.d.ourOrigin(), p.origin),
      senderId: (p) => peerId(p.origin),
    });
    if (!check.ok) return check;
    const { peer, seq } = check;
    const json = parseJson(Buffer.from(f.data).toString("utf8"), MAX_JSON_DEPTH + 3);
    if (!json.ok) return { ok: false, reason: json.reason === "too_deep" ? "too_deep" : "malformed", detail: json.detail };
    const body = v.safeParse(FrameBody, json.value);
    if (!body.success) return { ok: false, reason: "malformed", detail: body.issues[0]?.message ?? "not a frame" };
    const items: FrameItem[] = [];
    const refused: { index: number; reason: string; detail: string }[] = [];
    body.output.messages.forEach((raw, index) => {
      const e = v.safeParse(FrameEntrySchema, raw);
      if (!e.success) refused.push({ reason: "malformed_entry", detail: e.issues[0]?.message ?? "", index });
      else if (!peer.accept.has(e.output.channel)) refused.push({ reason: "channel_not_allowed", detail: e.output.channel, index });
      else {
        // An invalid trace context is dropped, the message delivered.
        const t = e.output.trace as { traceparent?: unknown; tracestate?: unknown } | undefined;
        const trace = t && typeof t === "object" ? traceOf(t.traceparent, t.tracestate) : undefined;
        items.push({ channel: e.output.channel, message: { ...coreOf(e.output.message), meshMeta: e.output.message["meshMeta"] as JsonObject }, index, ...(trace ? { trace } : {}) });
      }
    });
    return { ok: true, peer, seq, items, refused };
  }

  async #handle(m: JsMsg): Promise<void> {
    this.#pending = m.info.pending;
    this.#lastFrame = Date.now();
    const attempts = m.info.deliveryCount - (this.#busNaks.get(m.seq) ?? 0);
    if (attempts > this.d.maxAttempts()) return this.#dead({ reason: "attempts_exhausted", detail: `${attempts} deliveries`, msg: m });
    const verdict = this.#check({ subject: m.subject, msgId: m.headers?.get("Nats-Msg-Id") || undefined, header: (n) => m.headers?.get(n) || undefined, data: m.data });
    if (!verdict.ok) return this.#dead({ reason: verdict.reason, detail: verdict.detail, msg: m });
    const { peer, seq, items } = verdict;
    const sender = peerId(peer.origin);
    // On Redis the check and the record are one step with the delivery (publishOnce), shared by
    // replicas; it is read ahead only when refused entries are to be dead-lettered first.
    const onRedis = this.d.marksFile === undefined;
    let memory: SeqMemory | undefined;
    if (!onRedis || verdict.refused.length > 0) {
      try {
        memory = await this.#memoryOf(sender);
      } catch (err) {
        return this.#busBusy(m, err);
      }
      if (memory.seen(seq)) return this.#repeat(m);
    }
    // Refused entries are kept before anything is delivered: if that fails, the frame is retried whole.
    try {
      for (const r of verdict.refused) await this.d.deadLetter({ ...r, msg: m });
    } catch (err) {
      this.d.log.limited("wan-dlq", "warn", "cannot write to the WAN dead-letter stream; frame retried", { error: (err as Error).message });
      m.nak(2_000);
      return;
    }
    for (const r of verdict.refused) this.#counted(r.reason);
    let result: { published: number; refused: { index: number; reason: string; detail: string }[] };
    // A write that takes long (Redis failing over) must not let ack_wait run out: that would be
    // a redelivery counted as an attempt, spent on our side's trouble.
    const inProgress = setInterval(() => m.working(), Math.max(500, this.d.ackWaitMs() / 3));
    try {
      if (onRedis) {
        const once = await bounded(this.d.bus().publishOnce(items, { origin: peer.origin }, { hash: this.d.marksHash, field: sender, seq }));
        if (once.duplicate) return this.#repeat(m);
        result = once;
      } else {
        const next = memory!.with(seq);
        result = await this.d.bus().publishMarked(items, { origin: peer.origin }, { hash: this.d.marksHash, field: sender, value: JSON.stringify(next) });
        this.#memory.set(sender, next);
        this.#persistMarks();
      }
    } catch (err) {
      return this.#busBusy(m, err);
    } finally {
      clearInterval(inProgress);
    }
    this.#countDelivered(peer.origin, result.published);
    for (const r of result.refused) {
      const it = items[r.index]!;
      await this.d.deadLetter({ reason: r.reason, detail: `${it.channel}: ${r.detail}`, msg: m, index: it.index }).catch((err: unknown) => {
        this.d.log.error("cannot write a refused WAN entry to the dead-letter stream", { error: (err as Error).message, reason: r.reason });
      });
      this.#counted(r.reason);
    }
    await this.#ack(m);
  }

  /** A frame delivered before (a retry past the dedupe window, a redelivery): acknowledged, dropped. */
  async #repeat(m: JsMsg): Promise<void> {
    this.#duplicates++;
    this.d.metrics.duplicates.inc({ layer: "receiver" });
    await this.#ack(m);
  }

  #countDelivered(origin: string, n: number): void {
    this.#delivered += n;
    this.d.metrics.delivered.inc({ peer: origin }, n);
  }

  /**
   * An operator's retry of a dead letter (`pilox-mesh wan dlq replay ID`): the frame is checked
   * again as it was first received (its original subject and id, today's peers and rules). A
   * whole-frame record goes the normal way (its sequence was never delivered); an entry record
   * delivers that entry alone, once: the replay is marked with the delivery.
   */
  async replay(r: { id: number; subject: string; msgId: string | undefined; header: (n: string) => string | undefined; data: Uint8Array; entry: number | undefined }): Promise<ReplayOutcome> {
    const verdict = this.#check({ subject: r.subject, msgId: r.msgId, header: r.header, data: r.data });
    if (!verdict.ok) return { ok: false, reason: verdict.reason, detail: verdict.detail };
    const sender = peerId(verdict.peer.origin);
    const bus = this.d.bus();
    let items = verdict.items;
    let mark: { field: string; value: string };
    if (r.entry === undefined) {
      const delivered = { ok: false as const, reason: "already_delivered", detail: `frame ${verdict.seq} of ${verdict.peer.origin} was delivered` };
      if (this.d.marksFile === undefined) {
        const once = await bus.publishOnce(items, { origin: verdict.peer.origin }, { hash: this.d.marksHash, field: sender, seq: verdict.seq });
        if (once.duplicate) return delivered;
        this.#countDelivered(verdict.peer.origin, once.published);
        return { ok: true, delivered: once.published, refused: [...verdict.refused, ...once.refused.map((x) => ({ ...x, index: items[x.index]!.index }))] };
      }
      const memory = await this.#memoryOf(sender);
      if (memory.seen(verdict.seq)) return delivered;
      const next = memory.with(verdict.seq);
      mark = { field: sender, value: JSON.stringify(next) };
    } else {
      const refused = verdict.refused.find((x) => x.index === r.entry);
      if (refused) return { ok: false, reason: refused.reason, detail: refused.detail };
      items = items.filter((x) => x.index === r.entry);
      if (items.length === 0) return { ok: false, reason: "no_such_entry", detail: `the frame has no entry ${r.entry}` };
      const field = `replayed:${r.msgId ?? "?"}:${r.entry}`;
      const marks = this.d.marksFile ? this.#replayed : await bus.backend.readMarks(this.d.marksHash, items.map((x) => x.channel));
      if (marks.has(field)) return { ok: false, reason: "already_delivered", detail: "this entry was replayed before" };
      mark = { field, value: new Date().toISOString() };
    }
    const result = await bus.publishMarked(items, { origin: verdict.peer.origin }, { hash: this.d.marksHash, ...mark });
    if (r.entry === undefined) this.#memory.set(sender, SeqMemory.parse(mark.value));
    else this.#replayed.set(mark.field, mark.value);
    this.#persistMarks();
    this.#countDelivered(verdict.peer.origin, result.published);
    return { ok: true, delivered: result.published, refused: [...verdict.refused, ...result.refused.map((x) => ({ ...x, index: items[x.index]!.index }))] };
  }

  async #memoryOf(sender: string): Promise<SeqMemory> {
    if (this.d.marksFile) return this.#memory.get(sender) ?? new SeqMemory();
    // On Redis, read it each time: replicas of this site share the consumer and the memory.
    const marks = await this.d.bus().backend.readMarks(this.d.marksHash);
    return SeqMemory.parse(marks.get(sender));
  }

  #persistMarks(): void {
    if (!this.d.marksFile) return;
    const out: Record<string, string> = {};
    for (const [k, m] of this.#memory) out[k] = JSON.stringify(m);
    for (const [k, v] of this.#replayed) out[k] = v;
    writeMemoryFile(this.d.marksFile, out);
  }

  /** The local bus cannot take it now: back to the stream with a delay, not counted as an attempt. */
  #busBusy(m: JsMsg, err: unknown): void {
    if (!(err instanceof BusUnavailableError) && !/unavailable|connect/i.test((err as Error).message)) throw err;
    this.#busNaks.set(m.seq, (this.#busNaks.get(m.seq) ?? 0) + 1);
    if (this.#busNaks.size > 100_000) this.#busNaks.clear();
    this.d.log.limited("wan-bus-busy", "warn", "local bus unavailable; WAN consuming paused", { error: (err as Error).message });
    m.nak(1_000);
  }

  /**
   * Acknowledged with confirmation (ackAck), without holding up the next frame for it: the
   * delivery is already recorded, so an acknowledgement that is lost only brings the frame
   * again, and it is recognised as a repeat.
   */
  async #ack(m: JsMsg): Promise<void> {
    this.#busNaks.delete(m.seq);
    m.ackAck({ timeout: 5_000 }).catch(() => false);
  }

  async #dead(d: DeadLetter): Promise<void> {
    try {
      await this.d.deadLetter(d);
    } catch (err) {
      this.d.log.limited("wan-dlq", "warn", "cannot write to the WAN dead-letter stream; frame retried", { error: (err as Error).message });
      d.msg.nak(2_000);
      return;
    }
    this.#counted(d.reason);
    this.d.log.limited(`wan-refused-${d.reason}`, "warn", "WAN frame refused; moved to the dead-letter stream", { reason: d.reason, detail: d.detail, subject: d.msg.subject, sender: d.msg.headers?.get(HDR.sender) ?? "" });
    this.#busNaks.delete(d.msg.seq);
    // A reason with +TERM came with server 2.10.4; a 2.9 server ignores such a term entirely.
    if (this.d.termWithReason()) d.msg.term(d.reason);
    else d.msg.term();
  }

  #counted(reason: string): void {
    this.#deadCount++;
    this.d.metrics.rejected.inc({ reason });
    this.d.metrics.dlq.inc({ reason });
  }

  status(): ReceiverStatus {
    return { delivered: this.#delivered, duplicates: this.#duplicates, deadLettered: this.#deadCount, pending: this.#pending, lastFrame: this.#lastFrame ? new Date(this.#lastFrame).toISOString() : null };
  }

  close(): Promise<void> {
    return this.#pull.close();
  }
}

/** How long one frame's write to the local bus may take before the frame goes back (not an attempt). */
const BUS_WRITE_TIMEOUT_MS = 15_000;

/**
 * `p`, or BusUnavailableError once it has taken BUS_WRITE_TIMEOUT_MS: a write that hangs (a
 * store in the middle of a failover) must not hold up the frames behind it for ever. If it
 * lands later, the frame's retry finds it recorded and is dropped as a repeat.
 */
function bounded<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BusUnavailableError("backend_unavailable", `the local bus did not take the frame within ${BUS_WRITE_TIMEOUT_MS / 1000} s`)), BUS_WRITE_TIMEOUT_MS);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
