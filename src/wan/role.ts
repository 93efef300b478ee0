/**
 * The WAN as a role of the running appliance: a transport of federation. Its peers, keys and
 * channel rules are federation's (peers with `transport = "wan"`); this role only carries their
 * messages over NATS JetStream. It connects in the background (NATS away at start is not an
 * error: messages wait in the on-disk queues), checks or creates the streams, runs one sender
 * per WAN peer and this site's receiver.
 */
import type { KeyObject } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { MeshBus } from "../bus/index.ts";
import type { Config, WanSecrets } from "../config/index.ts";
import { PeerLinks, peerId, type Peer } from "../federation/index.ts";
import type { Ed25519Key } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import type { WanMetrics } from "../metrics/index.ts";
import { connectNats, loadClient, serverAtLeast, type Js, type Nats } from "./connect.ts";
import { DLQ_HDR, writeDeadLetter } from "./dlq.ts";
import { HDR } from "./frame.ts";
import { Receiver, type DeadLetter, type ReplayOutcome } from "./receiver.ts";
import { reservedSeqs, Sender, senderDir } from "./sender.ts";
import { consumerName, inboxFilter } from "./subjects.ts";
import { ensurePiloxIngest, ensureStreams, ingestConsumerName, StreamMismatchError } from "./streams.ts";
import { Pilox } from "./pilox.ts";
import { readPlacement, type StreamPlacement } from "./placement.ts";
import { SeqBlocks } from "./seq-blocks.ts";

export interface WanDeps {
  bus: () => MeshBus;
  identity: () => Ed25519Key;
  /** This instance's current and next keys (our own envelopes are ingested too). */
  ownKeys: () => { kid: string; publicKey: KeyObject }[];
  peers: () => ReadonlyMap<string, Peer>;
  secrets: () => WanSecrets | undefined;
  metrics: WanMetrics;
  log: Logger;
}

export interface DeadLetterView {
  id: number;
  at: string | null;
  reason: string;
  detail: string | null;
  subject: string | null;
  msgId: string | null;
  entry: number | null;
  sender: string | null;
  bytes: number;
  body: string | null;
}

export interface WanReady {
  ok: boolean;
  connected: boolean;
  detail: string;
  queue: { messages: number; oldestAgeSeconds: number | null };
}

export class WanRole {
  #config: Config;
  readonly #senders: PeerLinks<Sender>;
  readonly #receiver: Receiver;
  readonly #pilox: Pilox;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #connected = false;
  #error: string | undefined;
  #ingestError: string | undefined;
  #closed = false;
  #connecting: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #placementTimer: NodeJS.Timeout | undefined;
  readonly #seqBlocks: SeqBlocks;
  #placement: StreamPlacement | null = null;

  private constructor(config: Config, private readonly client: { nats: Nats; js: Js }, private readonly d: WanDeps) {
    this.#config = config;
    const c = () => this.#config;
    // Both consumers (frames, the reference's envelopes) keep their memory in one hash on Redis
    // (a file each on the embedded bus) and write refusals to the same dead-letter stream.
    const marksHash = `pilox-mesh:wan:marks:${peerId(config.instance.origin)}`;
    const embedded = d.bus().backend.kind === "embedded";
    const deadLetter = (x: DeadLetter) => {
      if (!this.#js) return Promise.reject(new Error("NATS is not connected"));
      return writeDeadLetter(this.client.nats, this.#js, { dlqPrefix: c().wan.dlq_subject_prefix, ourOrigin: c().instance.origin }, x);
    };
    const termWithReason = () => serverAtLeast(this.#nc, 2, 10, 4);
    mkdirSync(join(config.node.state_dir, "wan"), { recursive: true, mode: 0o700 });
    this.#seqBlocks = new SeqBlocks(join(config.node.state_dir, "wan", "seq-blocks"), reservedSeqs(config.node.state_dir));
    this.#senders = new PeerLinks({
      transport: "wan",
      open: (p) => this.#sender(p),
      // Deliveries from a WAN peer are counted by its origin: the series exists from the start.
      onPeer: (p) => d.metrics.delivered.inc({ peer: p.origin }, 0),
      bus: d.bus,
      log: d.log,
    });
    this.#receiver = new Receiver({
      bus: d.bus,
      peers: d.peers,
      ourOrigin: () => c().instance.origin,
      prefix: () => c().wan.subject_prefix,
      maxFrameBytes: () => c().wan.max_frame_bytes,
      maxAttempts: () => c().wan.max_attempts,
      ackWaitMs: () => c().wan.ack_wait_seconds * 1000,
      fetchBatch: () => c().wan.fetch_batch,
      marksHash,
      ...(embedded ? { marksFile: join(config.node.state_dir, "wan", "inbound-marks.json") } : {}),
      deadLetter,
      termWithReason,
      metrics: d.metrics,
      log: d.log,
    });
    this.#pilox = new Pilox({
      bus: d.bus,
      config: c,
      peers: d.peers,
      identity: d.identity,
      ownKeys: d.ownKeys,
      publishToken: () => d.secrets()?.publishToken,
      js: () => (this.#connected ? this.#js : undefined),
      nats: client.nats,
      marksHash,
      ...(embedded ? { marksFile: join(config.node.state_dir, "wan", "ingest-marks.json") } : {}),
      deadLetter,
      termWithReason,
      metrics: d.metrics,
      log: d.log,
    });
  }

  /** POST /v1/publish (the reference bridge's endpoint) on the public listener. */
  routes() {
    return this.#pilox.routes();
  }

  /** Loads the NATS client (only now: an appliance without [wan] never does). */
  static async create(config: Config, d: WanDeps): Promise<WanRole> {
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(config.node.state_dir, "wan"), { recursive: true, mode: 0o700 });
    return new WanRole(config, await loadClient(), d);
  }

  async start(): Promise<void> {
    await this.#senders.apply(this.d.peers());
    this.#receiver.start();
    if (this.#config.wan.pilox.ingest) {
      this.d.metrics.delivered.inc({ peer: "pilox-ingest" }, 0);
      this.#pilox.start();
    }
    this.#connecting = this.#connect();
  }

  #sender(p: Peer): Sender {
    const c = () => this.#config;
    return new Sender(p, {
      bus: this.d.bus,
      identity: this.d.identity,
      ourOrigin: () => c().instance.origin,
      prefix: () => c().wan.subject_prefix,
      frameMaxMessages: () => c().wan.frame_max_messages,
      frameMaxBytes: () => c().wan.max_frame_bytes,
      frameMaxWaitMs: () => c().wan.frame_max_wait_ms,
      maxInFlight: () => c().wan.max_in_flight,
      js: () => (this.#connected ? this.#js : undefined),
      nats: this.client.nats,
      dir: senderDir(c().node.state_dir, p.origin),
      seqBlocks: this.#seqBlocks,
      queueMaxBytes: c().federation.queue_max_bytes,
      metrics: this.d.metrics,
      log: this.d.log,
    });
  }

  /** Follows federation's peer set (reload, manifest refresh). */
  async onPeers(peers: ReadonlyMap<string, Peer>): Promise<void> {
    await this.#senders.apply(peers);
  }

  /** Bounds and limits follow a reload; where things live on NATS is pinned by the daemon (restart-only keys). */
  reconfigure(config: Config): void {
    this.#config = config;
  }

  async #connect(): Promise<void> {
    const c = this.#config;
    try {
      const nc = await connectNats(this.client.nats, c, this.d.secrets(), this.d.log);
      if (this.#closed) {
        await nc.close();
        return;
      }
      this.#nc = nc;
      void this.#watch(nc).catch(() => {});
      await this.#prepare();
    } catch (err) {
      // NATS away: messages wait in the queues on disk; try again shortly.
      this.#error = (err as Error).message;
      this.d.log.limited("wan-connect", "warn", "cannot connect to NATS; retrying", { error: this.#error, servers: c.wan.nats_urls.join(",") });
      this.#scheduleRetry(() => (this.#connecting = this.#connect()), 1_000);
    }
  }

  /** Streams and consumer checked (or made), then the receiver and senders run. */
  async #prepare(): Promise<void> {
    const nc = this.#nc!;
    try {
      const jsm = await this.client.js.jetstreamManager(nc, this.#jsOpts());
      await ensureStreams(this.client.js, jsm, this.#config);
      this.#js = this.client.js.jetstream(nc, this.#jsOpts());
      const consumer = await this.#js.consumers.get(this.#config.wan.stream, consumerName(this.#config.instance.origin));
      this.#error = undefined;
      this.#connected = !nc.isClosed();
      this.#receiver.attach(consumer);
      for (const s of this.#senders.values()) s.poke();
      if (this.#config.wan.pilox.ingest) void this.#prepareIngest();
      this.#watchPlacement(jsm);
      this.d.log.info("WAN ready", { server: nc.getServer(), stream: this.#config.wan.stream, consumer: consumerName(this.#config.instance.origin), inbox: inboxFilter(this.#config.wan.subject_prefix, this.#config.instance.origin) });
    } catch (err) {
      this.#connected = false;
      this.#error = (err as Error).message;
      // A JetStream API call that timed out (a cluster electing, or busy) is worth a quick retry;
      // a stream with the wrong settings waits for its operator.
      const soon = !(err instanceof StreamMismatchError);
      this.d.log.error(`the WAN cannot start on this NATS; retrying in ${soon ? 3 : 30} s`, { error: this.#error });
      this.#scheduleRetry(() => void this.#prepare(), soon ? 3_000 : 30_000);
    }
  }

  /** The reference's envelope stream and our consumer of it; its trouble does not stop frames. */
  async #prepareIngest(): Promise<void> {
    if (this.#closed || !this.#nc || !this.#js) return;
    try {
      await ensurePiloxIngest(this.client.js, await this.client.js.jetstreamManager(this.#nc, this.#jsOpts()), this.#config);
      this.#pilox.attach(await this.#js.consumers.get(this.#config.wan.pilox.stream, ingestConsumerName(this.#config.instance.origin)));
      this.#ingestError = undefined;
    } catch (err) {
      this.#ingestError = (err as Error).message;
      this.d.log.error("Pilox ingest cannot start on this NATS; retrying in 30 s", { error: this.#ingestError });
      const t = setTimeout(() => void this.#prepareIngest(), 30_000);
      t.unref();
    }
  }

  /** The frame stream's leader and replicas, read every 5 s for status (never on a request's path). */
  #watchPlacement(jsm: JetStreamManager): void {
    clearInterval(this.#placementTimer);
    const read = () =>
      void readPlacement(jsm, this.#config.wan.stream).then(
        (p) => (this.#placement = p),
        () => (this.#placement = null),
      );
    read();
    this.#placementTimer = setInterval(read, 5_000);
    this.#placementTimer.unref();
  }

  /** The JetStream domain to address (a leaf node reaching its hub's JetStream), when set. */
  #jsOpts(): { domain?: string } {
    const d = this.#config.wan.jetstream_domain;
    return d ? { domain: d } : {};
  }

  #scheduleRetry(fn: () => void, ms = 30_000): void {
    if (this.#closed) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(fn, ms);
    this.#retry.unref();
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const st of nc.status()) {
      if (st.type === "disconnect") this.#connected = false;
      else if (st.type === "reconnect") {
        if (this.#js && !this.#error) this.#connected = true;
        for (const s of this.#senders.values()) s.poke();
      }
    }
  }

  /** This site's dead letters, oldest first, after stream sequence `after`. */
  async listDeadLetters(after: number, limit: number): Promise<DeadLetterView[]> {
    if (!this.#js) throw new Error("NATS is not connected");
    const w = this.#config.wan;
    const consumer = await this.#js.consumers.get(w.dlq_stream, { filter_subjects: `${w.dlq_subject_prefix}.${peerId(this.#config.instance.origin)}.>`, ...(after > 0 ? { deliver_policy: this.client.js.DeliverPolicy.StartSequence, opt_start_seq: after + 1 } : {}) });
    const out: DeadLetterView[] = [];
    const pending = (await consumer.info(true)).num_pending;
    if (pending === 0) return out;
    const batch = await consumer.fetch({ max_messages: Math.min(limit, pending), expires: 3_000 });
    for await (const m of batch) {
      const h = (k: string) => m.headers?.get(k) || null;
      out.push({
        id: m.seq,
        at: h(DLQ_HDR.at),
        reason: h(DLQ_HDR.reason) ?? m.subject.split(".").pop() ?? "",
        detail: h(DLQ_HDR.detail),
        subject: h(DLQ_HDR.subject),
        msgId: h(DLQ_HDR.msgId),
        entry: h(DLQ_HDR.entry) === null ? null : Number(h(DLQ_HDR.entry)),
        sender: h(HDR.sender),
        bytes: m.data.length,
        body: m.data.length <= 64 * 1024 ? m.string() : null,
      });
      if (out.length >= Math.min(limit, pending)) break;
    }
    return out;
  }

  /** Retries one dead letter through today's checks (see Receiver.replay). */
  async replayDeadLetter(id: number): Promise<ReplayOutcome> {
    if (!this.#nc || !this.#js) throw new Error("NATS is not connected");
    const w = this.#config.wan;
    const jsm = await this.client.js.jetstreamManager(this.#nc, this.#jsOpts());
    const m = await jsm.streams.getMessage(w.dlq_stream, { seq: id }).catch(() => null);
    if (!m || !m.subject.startsWith(`${w.dlq_subject_prefix}.${peerId(this.#config.instance.origin)}.`)) return { ok: false, reason: "not_found", detail: `no dead letter ${id} of this site in ${w.dlq_stream}` };
    const h = (k: string) => m.header?.get(k) || undefined;
    const subject = h(DLQ_HDR.subject);
    if (!subject) return { ok: false, reason: "not_found", detail: `${id} is not a frame's dead letter (an advisory?)` };
    const entry = h(DLQ_HDR.entry);
    if (w.pilox.subjects.includes(subject)) return this.#pilox.replay({ subject, msgId: h(DLQ_HDR.msgId), header: h, data: m.data, key: h(DLQ_HDR.msgId) ? `id:${h(DLQ_HDR.msgId)}` : `dlq:${w.dlq_stream}:${id}` });
    return this.#receiver.replay({ id, subject, msgId: h(DLQ_HDR.msgId), header: h, data: m.data, entry: entry === undefined ? undefined : Number(entry) });
  }

  ready(): WanReady {
    const st = [...this.#senders.values()].map((s) => s.status());
    const messages = st.reduce((a, s) => a + s.queue.messages, 0);
    const ages = st.map((s) => s.queue.oldestAgeSeconds).filter((x): x is number => x !== null);
    const oldest = ages.length ? Math.max(...ages) : null;
    const detail = this.#connected ? `connected to ${this.#nc?.getServer() ?? "NATS"}` : this.#error ? `not ready: ${this.#error}` : "NATS not connected";
    return { ok: this.#connected, connected: this.#connected, detail, queue: { messages, oldestAgeSeconds: oldest } };
  }

  queueDepth(): number {
    let n = 0;
    for (const s of this.#senders.values()) n += s.status().queue.messages;
    return n;
  }

  /** Per WAN peer: its queue and sends (for `status` and `peers`). */
  peerStatus(origin: string) {
    return this.#senders.get(origin)?.status() ?? null;
  }

  /** Gauges read at scrape time (status() itself has no side effect). */
  scrape(): void {
    this.d.metrics.consumerPending.set(this.#receiver.status().pending ?? 0);
  }

  status() {
    const r = this.ready();
    const w = this.#config.wan;
    const rec = this.#receiver.status();
    return {
      connected: r.connected,
      server: this.#connected ? (this.#nc?.getServer() ?? null) : null,
      serverVersion: this.#nc?.info?.version ?? null,
      error: this.#error ?? null,
      stream: w.stream,
      placement: this.#placement,
      dlqStream: w.dlq_stream,
      consumer: consumerName(this.#config.instance.origin),
      inbox: inboxFilter(w.subject_prefix, this.#config.instance.origin),
      queue: r.queue,
      receiver: rec,
      pilox: { ingest: w.pilox.ingest, stream: w.pilox.stream, error: this.#ingestError ?? null, ...this.#pilox.status() },
      peers: Object.fromEntries([...this.#senders.entries()].map(([o, s]) => [o, s.status()])),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearInterval(this.#placementTimer);
    await this.#senders.closeAll();
    await this.#receiver.close();
    await this.#pilox.close();
    await this.#connecting;
    const nc = this.#nc;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
  }
}
