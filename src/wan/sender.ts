/**
 * Where messages leave for a WAN peer: its forward_channels are taken off the local bus into an
 * on-disk queue, cut into frames, each frame sealed and written to disk under its sequence
 * before its first send (so every retry is byte-identical and keeps its `Nats-Msg-Id`), then
 * published to JetStream with a bounded number of PubAcks in flight. A frame leaves the frame
 * log only when the stream acknowledged it. NATS away: the queue grows (bounded by
 * federation.queue_max_bytes, as the relay's), and drains in sequence order when it returns.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Closer, MeshBus, JsonObject } from "../bus/index.ts";
import { parseEntry, Spool, type SpoolEntry } from "../bus/spool.ts";
import { forwardChanged, peerId, subscribeForward, type Peer } from "../federation/index.ts";
import { writeAtomic } from "./atomic.ts";
import type { SeqBlocks } from "./seq-blocks.ts";
import type { Ed25519Key } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import type { WanMetrics } from "../metrics/index.ts";
import type { Nats } from "./connect.ts";
import { entryText, sealFrame } from "./frame.ts";
import { FrameLog, type StoredFrame } from "./frame-log.ts";
import { frameSubject } from "./subjects.ts";

export interface SenderDeps {
  bus: () => MeshBus;
  identity: () => Ed25519Key;
  ourOrigin: () => string;
  prefix: () => string;
  frameMaxMessages: () => number;
  frameMaxBytes: () => number;
  frameMaxWaitMs: () => number;
  maxInFlight: () => number;
  /** The JetStream client while NATS is connected, else undefined. */
  js: () => JetStreamClient | undefined;
  nats: Nats;
  dir: string;
  /** The site's frame sequences, shared by all its senders. */
  seqBlocks: SeqBlocks;
  queueMaxBytes: number;
  metrics: WanMetrics;
  log: Logger;
}

export interface SenderStatus {
  queue: { messages: number; bytes: number; frames: number; oldestAgeSeconds: number | null };
  lastSeq: number;
  sent: number;
  lastContact: string | null;
  lastError: string | null;
}

/** Frame sequences reserved per write of the seq file. */
/**
 * Sequences reserved per block. Senders of one site take turns, so one sender's gap is at most
 * (its site's WAN peers − 1) × SEQ_BLOCK: under a receiver's window (SEQ_WINDOW, 65,536) for up
 * to 256 peers.
 */
export const SEQ_BLOCK = 256;

/** What each sender under `stateDir` reserved before (its `seq` file), for SeqBlocks. */
export function reservedSeqs(stateDir: string): number[] {
  const root = join(stateDir, "wan", "outbound");
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((d) => join(root, d, "seq"))
    .filter((f) => existsSync(f))
    .map((f) => Number(readFileSync(f, "utf8").trim()) || 0);
}

/** Where a peer's WAN queue and frames live. */
export function senderDir(stateDir: string, origin: string): string {
  return join(stateDir, "wan", "outbound", peerId(origin));
}

/** Only the keys a frame entry has, in its order (so the line's text is the entry's). */
function isEntryShaped(e: SpoolEntry): boolean {
  const keys = Object.keys(e);
  return keys[0] === "channel" && keys[1] === "message" && (keys.length === 2 || (keys.length === 3 && keys[2] === "trace"));
}

const eventIdOf = (m: Record<string, unknown>): string => ((m["meshMeta"] as Record<string, unknown> | undefined)?.["eventId"] as string | undefined) ?? "";

export class Sender {
  readonly #queue: Spool;
  readonly #framesDir: string;
  readonly #log: FrameLog;
  readonly #seqFile: string;
  /** Frames on disk not yet acknowledged by the stream, in sequence order. */
  #frames: (StoredFrame & { sending: boolean })[] = [];
  #lastSeq = 0;
  /** The highest sequence the seq file allows without another write. */
  #seqReserved = 0;
  #subs: Closer[] = [];
  #closed = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #inFlight = 0;
  #failures = 0;
  #backoffUntil = 0;
  #reconcileNeeded = false;
  #sent = 0;
  #lastContact: number | undefined;
  #lastError: string | undefined;
  /** When the oldest message still in the queue (not yet framed) arrived. */
  #queuedSince: number | undefined;

  constructor(public peer: Peer, private readonly d: SenderDeps) {
    // Frames cut but not yet acknowledged count against the same bound as the queue.
    this.#queue = new Spool(join(d.dir, "queue"), d.queueMaxBytes, () => this.#log.bytes);
    this.#framesDir = join(d.dir, "frames");
    this.#seqFile = join(d.dir, "seq");
    mkdirSync(this.#framesDir, { recursive: true, mode: 0o700 });
    this.#log = new FrameLog(this.#framesDir);
    this.#recover();
  }

  /** Frames left by the last run, and the sequence to go on from. */
  #recover(): void {
    for (const f of this.#log.load()) this.#frames.push({ ...f, sending: false });
    // Frames an earlier version kept one file each: moved into the log, in sequence order.
    const files = readdirSync(this.#framesDir).filter((f) => /^\d+\.json$/.test(f));
    const legacy: StoredFrame[] = [];
    for (const f of files) {
      try {
        legacy.push(JSON.parse(readFileSync(join(this.#framesDir, f), "utf8")) as StoredFrame);
      } catch {
        /* torn by a crash while written: never sent */
      }
    }
    for (const f of legacy.sort((a, b) => a.seq - b.seq)) {
      if (this.#frames.some((x) => x.seq === f.seq)) continue;
      this.#log.append(f);
      this.#frames.push({ ...f, sending: false });
    }
    for (const f of files) rmSync(join(this.#framesDir, f), { force: true });
    this.#frames.sort((a, b) => a.seq - b.seq);
    const stored = existsSync(this.#seqFile) ? Number(readFileSync(this.#seqFile, "utf8").trim()) || 0 : 0;
    // The next frame takes a new block from the site's allocator (SeqBlocks), which starts far
    // above anything sent before, so a receiver's memory never mistakes it for a repeat.
    this.#lastSeq = Math.max(stored, this.#frames.at(-1)?.seq ?? 0);
    this.#seqReserved = this.#lastSeq;
    this.#reconcile();
    if (this.#queue.size > 0) this.#queuedSince = Date.now();
  }

  /**
   * A crash (or a disk error) between writing a frame and dropping its messages from the queue
   * leaves them in both: drop them from the queue, or they would go again in another frame.
   */
  #reconcile(): void {
    const last = this.#frames.at(-1);
    if (!last || this.#queue.size === 0) return;
    const head = this.#queue.peek(last.messages);
    if (head[0] && eventIdOf(head[0].message) === last.first) this.#queue.drop(head.length);
  }

  async start(): Promise<void> {
    await this.#subscribe();
    this.#loop = this.#run();
  }

  async update(peer: Peer): Promise<void> {
    const changed = forwardChanged(peer, this.peer);
    this.peer = peer;
    if (changed) {
      await Promise.all(this.#subs.map((s) => s.close()));
      await this.#subscribe();
    }
  }

  async #subscribe(): Promise<void> {
    this.#subs = await subscribeForward(this.d.bus(), this.peer, this.#queue, {
      trace: true,
      onFull: () => this.d.log.limited(`wan-queue-full-${this.peer.origin}`, "error", "WAN queue full", { peer: this.peer.origin }),
      onWriteFailed: (err, n) => this.d.log.limited(`wan-queue-write-${this.peer.origin}`, "error", "cannot write to the WAN queue; best-effort messages lost", { peer: this.peer.origin, messages: n, error: err.message }),
      onQueued: (n) => {
        this.#queuedSince ??= Date.now();
        this.d.metrics.spooled.inc({ peer: this.peer.origin }, n);
        this.#wake?.();
      },
    });
  }

  /**
   * Cuts frames from the queue while fewer than max_in_flight wait unacknowledged: a full one
   * whenever there is one; a partial one when at most one frame is outstanding (a quiet link
   * sends at once, even while the last frame's PubAck is on its way: waiting for it put up to
   * frame_max_wait_ms on a message whenever the server was slow to acknowledge) or when its
   * oldest message has waited frame_max_wait_ms (a busy link fills its frames).
   */
  #cutFrames(connected: boolean): void {
    const max = this.d.frameMaxMessages();
    const maxBytes = this.d.frameMaxBytes();
    while (this.#queue.size > 0 && this.#frames.length < this.d.maxInFlight()) {
      const full = this.#queue.size >= max || this.#queue.bytes >= maxBytes;
      const idle = this.#frames.length <= 1;
      const waited = this.#queuedSince !== undefined && Date.now() - this.#queuedSince >= this.d.frameMaxWaitMs();
      if (!full && !(connected && (idle || waited))) break;
      const lines = this.#queue.peekLines(max);
      const texts: string[] = [];
      let first = "";
      let bytes = 32;
      let n = 0;
      for (const line of lines) {
        n++;
        // The feed writes exactly a frame entry's text ({channel, message, trace?}): a line it
        // wrote in this process goes as it is, unparsed. One read back from disk is checked,
        // and written again in that form if it holds anything else.
        let text = line.text;
        let len = line.bytes;
        let e: SpoolEntry | null = null;
        if (!line.trusted || texts.length === 0 || 32 + len > maxBytes) {
          e = parseEntry(line.text);
          if (e === null) continue; // a torn line: dropped with its frame
          if (!line.trusted && !isEntryShaped(e)) {
            text = entryText({ channel: e.channel, message: e.message as JsonObject, ...(e.trace ? { trace: e.trace } : {}) });
            len = Buffer.byteLength(text) + 1;
          }
        }
        if (texts.length === 0 && 32 + len > maxBytes) {
          // Larger than any frame may be: kept aside with the reason, so the rest moves on.
          this.#deadLetter(e!, len);
          continue;
        }
        if (texts.length > 0 && bytes + len > maxBytes) {
          n--;
          break;
        }
        if (texts.length === 0) first = eventIdOf(e!.message);
        texts.push(text);
        bytes += len;
      }
      if (texts.length === 0) {
        this.#queue.drop(n);
        continue;
      }
      let seq = this.#lastSeq + 1;
      // Sequences come a block at a time from the site's allocator (one write per block, not per
      // frame), shared by its senders so no two peers' frames share an id; a restart goes on
      // after the block, and the gap costs a receiver one range in its memory.
      if (seq > this.#seqReserved) {
        seq = this.d.seqBlocks.reserve(SEQ_BLOCK, seq);
        this.#seqReserved = seq + SEQ_BLOCK - 1;
        writeAtomic(this.#seqFile, String(this.#seqReserved));
      }
      this.#lastSeq = seq;
      const sealed = sealFrame({ key: this.d.identity(), sender: this.d.ourOrigin(), senderId: peerId(this.d.ourOrigin()), subject: frameSubject(this.d.prefix(), this.peer.origin, this.d.ourOrigin()), seq, texts });
      const frame: StoredFrame = { ...sealed, first, createdMs: Date.now() };
      // A frame torn by a crash is cut off at the next start, and its messages, still in the
      // queue, are framed again.
      this.#log.append(frame);
      this.#frames.push({ ...frame, sending: false });
      this.#queue.drop(n);
      // What is left arrived after this frame's first message; counting it from now keeps a
      // partial frame from waiting twice.
      this.#queuedSince = this.#queue.size > 0 ? Date.now() : undefined;
    }
  }

  #deadLetter(e: { channel: string; message: Record<string, unknown> }, bytes: number): void {
    const line = JSON.stringify({ ts: new Date().toISOString(), peer: this.peer.origin, reason: "too_large_for_frame", bytes, entry: e });
    appendFileSync(join(this.d.dir, "dead.jsonl"), line + "\n", { mode: 0o600 });
    this.d.metrics.dlq.inc({ reason: "too_large_for_frame" });
    this.d.log.error("message larger than wan.max_frame_bytes; kept in dead.jsonl", { peer: this.peer.origin, bytes, file: join(this.d.dir, "dead.jsonl") });
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      if (Date.now() < this.#backoffUntil) {
        await this.#sleep(this.#backoffUntil - Date.now());
        continue;
      }
      const js = this.d.js();
      try {
        if (this.#reconcileNeeded) {
          this.#reconcile();
          this.#reconcileNeeded = false;
        }
        this.#cutFrames(js !== undefined);
      } catch (err) {
        this.#reconcileNeeded = true;
        // The disk refused (full, read-only): nothing left the queue; try again shortly.
        this.#lastError = (err as Error).message;
        this.d.log.limited(`wan-frames-${this.peer.origin}`, "error", "cannot write a WAN frame to disk; retrying", { peer: this.peer.origin, error: this.#lastError, dir: this.d.dir });
        await this.#sleep(1_000);
        continue;
      }
      const todo = js ? this.#frames.filter((f) => !f.sending).slice(0, Math.max(0, this.d.maxInFlight() - this.#inFlight)) : [];
      if (todo.length === 0) {
        // Woken by a new message, an acknowledgement, NATS returning, or a partial frame's wait.
        const fill = this.#queuedSince !== undefined && this.#frames.length < this.d.maxInFlight() ? Math.max(1, this.#queuedSince + this.d.frameMaxWaitMs() - Date.now()) : Number.POSITIVE_INFINITY;
        await this.#sleep(Math.min(js ? 60_000 : 1_000, fill));
        continue;
      }
      for (const f of todo) {
        f.sending = true;
        this.#inFlight++;
        void this.#publish(js!, f)
          .then(
            () => {
              this.#failures = 0;
            },
            (err: unknown) => {
              this.#failures++;
              // Through a leaf node whose link to the hub is down, the leaf itself answers.
              const msg = (err as Error).message;
              this.#lastError = /jetstream is not enabled/i.test(msg) ? `${msg} (no JetStream reachable: on a leaf node, is its link to the hub up, and wan.jetstream_domain its hub's domain?)` : msg;
              // Back off (capped, jittered) before the retry; the frame keeps its id and bytes.
              this.#backoffUntil = Date.now() + 50 + Math.random() * Math.min(5_000, 100 * 2 ** Math.min(this.#failures, 10));
              this.d.log.limited(`wan-send-${this.peer.origin}`, "warn", "WAN publish failed; will retry", { peer: this.peer.origin, error: this.#lastError, frames: this.#frames.length });
            },
          )
          .finally(() => {
            f.sending = false;
            this.#inFlight--;
            this.#wake?.();
          });
      }
      await this.#sleep(60_000);
    }
  }

  async #publish(js: JetStreamClient, f: StoredFrame): Promise<void> {
    const h = this.d.nats.headers();
    for (const [k, v] of Object.entries(f.headers)) h.set(k, v);
    const ack = await js.publish(f.subject, f.body, { msgID: f.msgId, headers: h, timeout: 5_000 });
    if (ack.duplicate) this.d.metrics.duplicates.inc({ layer: "jetstream" });
    this.#log.done(f.seq);
    this.#frames = this.#frames.filter((x) => x.seq !== f.seq);
    this.#sent += f.messages;
    this.#lastContact = Date.now();
    this.#lastError = undefined;
    this.d.metrics.published.inc({ peer: this.peer.origin }, f.messages);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((r) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        r();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        this.#wake = undefined;
        r();
      };
    });
  }

  /** Wakes the loop (NATS came back). */
  poke(): void {
    this.#wake?.();
  }

  status(): SenderStatus {
    const framed = this.#frames.reduce((a, f) => a + f.messages, 0);
    const oldest = Math.min(this.#frames[0]?.createdMs ?? Number.POSITIVE_INFINITY, this.#queuedSince ?? Number.POSITIVE_INFINITY);
    return {
      queue: { messages: this.#queue.size + framed, bytes: this.#queue.bytes + this.#log.bytes, frames: this.#frames.length, oldestAgeSeconds: Number.isFinite(oldest) ? Math.round((Date.now() - oldest) / 1000) : null },
      lastSeq: this.#lastSeq,
      sent: this.#sent,
      lastContact: this.#lastContact ? new Date(this.#lastContact).toISOString() : null,
      lastError: this.#lastError ?? null,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await Promise.all(this.#subs.map((s) => s.close().catch(() => {})));
    await this.#loop;
    this.#queue.close();
    this.#log.close();
  }
}
