/**
 * Where messages leave for a federated mesh: one forwarder per peer subscribes to the channels
 * configured for it, keeps what it receives in an on-disk queue (nothing is lost across a
 * restart of either side), and sends it in batches, each request with a fresh token bound to
 * its body, retried with exponential backoff and jitter while the peer is unreachable.
 */
import { peerId } from "./peer-id.ts";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import type { Closer, MeshBus } from "../bus/index.ts";
import { DISCOVERY_PATH } from "../discovery/index.ts";
import { parseJson } from "../json/index.ts";
import { readBounded } from "../net/index.ts";
import { parseEntry, Spool } from "../bus/spool.ts";
import { forwardChanged, subscribeForward } from "./forward-feed.ts";
import type { Ed25519Key } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import type { AuditLog } from "./audit.ts";
import { RELAY_PATH } from "./inbound.ts";
import type { Peer } from "./peers.ts";
import { mintToken } from "./token.ts";

export interface ForwarderDeps {
  bus: () => MeshBus;
  identity: () => Ed25519Key;
  ourOrigin: () => string;
  tokenTtl: () => number;
  batchSize: () => number;
  /** Our bound on a batch's bytes; the peer's advertised limit lowers it. */
  batchMaxBytes: () => number;
  queueDir: string;
  queueMaxBytes: number;
  audit: AuditLog;
  log: Logger;
  /** Request timeout, ms. */
  timeoutMs?: number;
}

export interface ForwarderStatus {
  /** oldestAgeSeconds: how long the queue has held messages without emptying (null: empty). */
  queue: { messages: number; bytes: number; oldestAgeSeconds: number | null };
  lastContact: string | null;
  lastError: string | null;
  sent: number;
  /** Messages moved to dead.jsonl because the peer refused them as too large. */
  deadLettered: number;
  /** The byte bound batches are built to now. */
  batchMaxBytes: number;
}

/** `{"messages":[` … `]}` */
const BATCH_OVERHEAD = 15;
const MAX_DOCUMENT_BYTES = 256 * 1024;
/** A relay answer is `{accepted, refused: [...]}`: one refusal line per message at most. */
const MAX_ANSWER_BYTES = 1024 * 1024;

export function queueDirFor(stateDir: string, origin: string): string {
  return join(stateDir, "federation", "outbound", peerId(origin));
}

/** A peer's answer that says the batch is too large for it. */
class TooLargeError extends Error {}

/** How often at most the peer's discovery document is read for its body limit. */
const LEARN_INTERVAL_MS = 5 * 60_000;

export class Forwarder {
  readonly #queue: Spool;
  /** Since when the queue has held messages (reset whenever the sender finds it empty). */
  #nonEmptySince: number | undefined;
  /** The peer's body limit, from its discovery document (federationEndpoints.maxBodyBytes). */
  #peerLimit: number | undefined;
  #learnedAt = 0;
  /** Lowered after a 413 below what the peer advertised, raised again when it is relearned. */
  #splitLimit: number | undefined;
  #deadLettered = 0;
  #subs: Closer[] = [];
  #closed = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #lastContact: number | undefined;
  #lastError: string | undefined;
  #sent = 0;
  #abort = new AbortController();

  constructor(public peer: Peer, private readonly d: ForwarderDeps) {
    this.#queue = new Spool(d.queueDir, d.queueMaxBytes);
  }

  async start(): Promise<void> {
    await this.#subscribe();
    this.#loop = this.#run();
  }

  /** Follows a changed peer entry (keys, URL, channels) without losing the queue. */
  async update(peer: Peer): Promise<void> {
    const channelsChanged = forwardChanged(peer, this.peer);
    this.peer = peer;
    if (channelsChanged) {
      await Promise.all(this.#subs.map((s) => s.close()));
      await this.#subscribe();
    }
  }

  async #subscribe(): Promise<void> {
    this.#subs = await subscribeForward(this.d.bus(), this.peer, this.#queue, {
      trace: false, // the relay's batch format has no place for it
      onFull: () => this.d.log.limited(`fed-queue-full-${this.peer.origin}`, "error", "federation queue full", { peer: this.peer.origin }),
      onQueued: () => this.#wake?.(),
      onWriteFailed: (err, n) => this.d.log.limited(`fed-queue-write-${this.peer.origin}`, "error", "cannot write to the federation queue; best-effort messages lost", { peer: this.peer.origin, messages: n, error: err.message }),
    });
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      if (this.#queue.size === 0) {
        this.#nonEmptySince = undefined;
        await new Promise<void>((r) => (this.#wake = r));
        this.#wake = undefined;
        continue;
      }
      this.#nonEmptySince ??= Date.now();
      await this.#learnLimit();
      const limit = this.#byteLimit();
      const batch = this.#queue.peekLines(this.d.batchSize());
      // As many entries as fit the byte bound (at least one); corrupt ones ride along, unsent.
      // A line is the entry's JSON as the batch carries it, so it goes as it is.
      const parts: string[] = [];
      let bytes = BATCH_OVERHEAD;
      let n = 0;
      for (const line of batch) {
        const text = line.trusted || parseEntry(line.text) !== null ? line.text : "";
        const len = text.length === 0 ? 0 : line.bytes;
        if (parts.length > 0 && bytes + len > limit) break;
        if (text) parts.push(text);
        bytes += len;
        n++;
      }
      try {
        if (parts.length) await this.#send(`{"messages":[${parts.join(",")}]}`, parts.length);
        this.#queue.drop(n);
        this.#sent += parts.length;
        failures = 0;
      } catch (err) {
        if (this.#closed) break;
        if (err instanceof TooLargeError) {
          if (parts.length === 1) this.#deadLetter(parts[0]!, bytes, n);
          else this.#splitLimit = Math.max(1024, Math.floor(bytes / 2)); // split and go again at once
          this.#learnedAt = 0;
          continue;
        }
        failures++;
        this.#lastError = (err as Error).message;
        this.d.log.limited(`fed-send-${this.peer.origin}`, "warn", "federation peer unreachable; will retry", { peer: this.peer.origin, error: this.#lastError, waiting: this.#queue.size });
        // Exponential backoff with full jitter, capped at 30 s.
        const delay = Math.random() * Math.min(30_000, 250 * 2 ** Math.min(failures, 10));
        await new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          this.#wake = () => (clearTimeout(t), r());
        });
        this.#wake = undefined;
      }
    }
  }

  #byteLimit(): number {
    return Math.min(this.d.batchMaxBytes(), this.#peerLimit ?? Number.POSITIVE_INFINITY, this.#splitLimit ?? Number.POSITIVE_INFINITY);
  }

  /**
   * A message the peer refuses as too large even alone can never be sent: it leaves the queue
   * for `dead.jsonl` beside it (with the reason), so the messages behind it move on.
   */
  #deadLetter(text: string, bytes: number, n: number): void {
    const line = JSON.stringify({ ts: new Date().toISOString(), peer: this.peer.origin, reason: "too_large_for_peer", bytes, entry: JSON.parse(text) as unknown });
    appendFileSync(join(this.d.queueDir, "dead.jsonl"), line + "\n", { mode: 0o600 });
    this.#queue.drop(n);
    this.#deadLettered++;
    this.d.audit.append({ direction: "outbound", outcome: "refused", peer: this.peer.origin, messages: 1, reason: "too_large_for_peer", detail: `${bytes} bytes, moved to dead.jsonl` });
    this.d.log.error("federation message too large for the peer; dead-lettered", { peer: this.peer.origin, bytes, file: join(this.d.queueDir, "dead.jsonl") });
  }

  /** Reads the peer's body limit from its discovery document (bounded, best effort). */
  async #learnLimit(): Promise<void> {
    if (Date.now() - this.#learnedAt < LEARN_INTERVAL_MS) return;
    this.#learnedAt = Date.now();
    try {
      const res = await fetch(this.peer.url + DISCOVERY_PATH, { signal: AbortSignal.any([AbortSignal.timeout(5_000), this.#abort.signal]) });
      if (!res.ok) return void (await res.body?.cancel().catch(() => {}));
      const text = await readBounded(res, MAX_DOCUMENT_BYTES, this.peer.url + DISCOVERY_PATH);
      const doc = parseJson(text, 16);
      const max = doc.ok ? (doc.value as { federationEndpoints?: { maxBodyBytes?: unknown } } | null)?.federationEndpoints?.maxBodyBytes : undefined;
      if (typeof max === "number" && Number.isSafeInteger(max) && max >= 1024) {
        if (max !== this.#peerLimit) this.#splitLimit = undefined;
        this.#peerLimit = max;
      }
    } catch {
      /* no document (a stock Pilox peer, or unreachable): keep what we had, and split on 413 */
    }
  }

  async #send(body: string, n: number): Promise<void> {
    const token = await mintToken({ key: this.d.identity(), iss: this.d.ourOrigin(), aud: this.peer.origin, ttlSeconds: this.d.tokenTtl(), body });
    const res = await fetch(this.peer.url + RELAY_PATH, {
      method: "POST",
      headers: { "content-type": "application/json", "x-pilox-federation-jwt": token },
      body,
      signal: AbortSignal.any([AbortSignal.timeout(this.d.timeoutMs ?? 10_000), this.#abort.signal]),
    });
    // Our own answer is small: a peer streaming more than that is cut off, not buffered.
    const text = await readBounded(res, MAX_ANSWER_BYTES, this.peer.url + RELAY_PATH).catch(() => "");
    if (res.status === 413) {
      this.d.audit.append({ direction: "outbound", outcome: "refused", peer: this.peer.origin, messages: n, reason: "http_413" });
      throw new TooLargeError(`${this.peer.url} answered 413`);
    }
    if (!res.ok) {
      this.d.audit.append({ direction: "outbound", outcome: "refused", peer: this.peer.origin, messages: n, reason: `http_${res.status}` });
      throw new Error(`${this.peer.url} answered ${res.status}`);
    }
    this.#lastContact = Date.now();
    this.#lastError = undefined;
    this.d.log.debug("federation batch sent", { peer: this.peer.origin, messages: n, bytes: body.length });
    let refusedN = 0;
    try {
      refusedN = (JSON.parse(text) as { refused?: unknown[] }).refused?.length ?? 0;
    } catch {
      /* a 2xx without our body: delivered as far as we can tell */
    }
    this.d.audit.append({ direction: "outbound", outcome: "accepted", peer: this.peer.origin, messages: n, ...(refusedN ? { reason: `${refusedN} refused by the peer` } : {}) });
  }

  #oldestAge(): number | null {
    if (this.#queue.size === 0) return (this.#nonEmptySince = undefined), null;
    this.#nonEmptySince ??= Date.now();
    return Math.round((Date.now() - this.#nonEmptySince) / 1000);
  }

  status(): ForwarderStatus {
    return {
      queue: { messages: this.#queue.size, bytes: this.#queue.bytes, oldestAgeSeconds: this.#oldestAge() },
      lastContact: this.#lastContact ? new Date(this.#lastContact).toISOString() : null,
      lastError: this.#lastError ?? null,
      sent: this.#sent,
      deadLettered: this.#deadLettered,
      batchMaxBytes: this.#byteLimit(),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#wake?.();
    await Promise.all(this.#subs.map((s) => s.close().catch(() => {})));
    await this.#loop;
    this.#queue.close();
  }
}
