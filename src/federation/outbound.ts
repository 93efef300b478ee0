/**
 * Where messages leave for a federated mesh: one forwarder per peer subscribes to the channels
 * configured for it, keeps what it receives in an on-disk queue (nothing is lost across a
 * restart of either side), and sends it in batches, each request with a fresh token bound to
 * its body, retried with exponential backoff and jitter while the peer is unreachable.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Closer, Delivery, MeshBus } from "../bus/index.ts";
import type { JsonObject } from "../bus/envelope/v1.ts";
import { Spool, SpoolFullError } from "../bus/spool.ts";
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
  queueDir: string;
  queueMaxBytes: number;
  audit: AuditLog;
  log: Logger;
  /** Request timeout, ms. */
  timeoutMs?: number;
}

export interface ForwarderStatus {
  queue: { messages: number; bytes: number };
  lastContact: string | null;
  lastError: string | null;
  sent: number;
}

/** A short stable id of a peer: names its queue directory and its consumer group. */
export function peerId(origin: string): string {
  return createHash("sha256").update(origin).digest("hex").slice(0, 16);
}

export function queueDirFor(stateDir: string, origin: string): string {
  return join(stateDir, "federation", "outbound", peerId(origin));
}

export class Forwarder {
  readonly #queue: Spool;
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
    const channelsChanged = [...peer.forward].sort().join() !== [...this.peer.forward].sort().join();
    this.peer = peer;
    if (channelsChanged) {
      await Promise.all(this.#subs.map((s) => s.close()));
      await this.#subscribe();
    }
  }

  async #subscribe(): Promise<void> {
    const bus = this.d.bus();
    const group = `federation-${peerId(this.peer.origin)}`;
    this.#subs = await Promise.all([...this.peer.forward].map((ch) => bus.subscribe(ch, (m) => this.#enqueue(m), { group })));
  }

  #enqueue(m: Delivery): void {
    // Messages that came from a peer are not forwarded again (no loops between meshes).
    if (m.ext?.origin) return;
    const { meshSig: _s, meshExt: _e, ...message } = m.message;
    try {
      this.#queue.append({ channel: m.channel, message: message as JsonObject });
    } catch (err) {
      // On a durable channel the throw leaves the entry unacknowledged: it is retried later.
      if (err instanceof SpoolFullError) this.d.log.limited(`fed-queue-full-${this.peer.origin}`, "error", "federation queue full", { peer: this.peer.origin });
      throw err;
    }
    this.#wake?.();
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      if (this.#queue.size === 0) {
        await new Promise<void>((r) => (this.#wake = r));
        this.#wake = undefined;
        continue;
      }
      const batch = this.#queue.peek(this.d.batchSize());
      const messages = batch.filter((e) => e !== null);
      try {
        if (messages.length) await this.#send(JSON.stringify({ messages }), messages.length);
        this.#queue.drop(batch.length);
        this.#sent += messages.length;
        failures = 0;
      } catch (err) {
        if (this.#closed) break;
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

  async #send(body: string, n: number): Promise<void> {
    const token = await mintToken({ key: this.d.identity(), iss: this.d.ourOrigin(), aud: this.peer.origin, ttlSeconds: this.d.tokenTtl(), body });
    const res = await fetch(this.peer.url + RELAY_PATH, {
      method: "POST",
      headers: { "content-type": "application/json", "x-pilox-federation-jwt": token },
      body,
      signal: AbortSignal.any([AbortSignal.timeout(this.d.timeoutMs ?? 10_000), this.#abort.signal]),
    });
    const text = await res.text();
    if (!res.ok) {
      this.d.audit.append({ direction: "outbound", outcome: "refused", peer: this.peer.origin, messages: n, reason: `http_${res.status}` });
      throw new Error(`${this.peer.url} answered ${res.status}`);
    }
    this.#lastContact = Date.now();
    this.#lastError = undefined;
    let refusedN = 0;
    try {
      refusedN = (JSON.parse(text) as { refused?: unknown[] }).refused?.length ?? 0;
    } catch {
      /* a 2xx without our body: delivered as far as we can tell */
    }
    this.d.audit.append({ direction: "outbound", outcome: "accepted", peer: this.peer.origin, messages: n, ...(refusedN ? { reason: `${refusedN} refused by the peer` } : {}) });
  }

  status(): ForwarderStatus {
    return {
      queue: { messages: this.#queue.size, bytes: this.#queue.bytes },
      lastContact: this.#lastContact ? new Date(this.#lastContact).toISOString() : null,
      lastError: this.#lastError ?? null,
      sent: this.#sent,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#wake?.();
    await Promise.all(this.#subs.map((s) => s.close().catch(() => {})));
    await this.#loop;
  }
}
