/**
 * Pilox's own WAN hops, spoken by us (wire-v1 §6, §6.1): envelopes (`wan-envelope-v1`) on the
 * reference's subjects. Ingest turns each into the `pilox:system:events` message Pilox's ingress
 * publishes, once; `POST /v1/publish` is the reference bridge's endpoint, with its statuses and
 * error codes, and adds what the bridge never set: `Nats-Msg-Id` and our signature headers (the
 * body stays exactly the reference's shape). Stricter than the reference where it is lax: an
 * envelope its ingress would refuse, or one not signed by a federation peer (unless
 * `accept_unsigned`), goes to the dead-letter stream instead of looping.
 */
import { createHash } from "node:crypto";
import { readMemoryFile, writeMemoryFile } from "./memory-file.ts";
import type { KeyObject } from "node:crypto";
import type { Consumer, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { Hono, type Context } from "hono";
import * as v from "valibot";
import { BusUnavailableError, PILOX_SYSTEM_EVENTS, traceOf, type JsonObject, type MeshBus } from "../bus/index.ts";
import { WAN_ENVELOPE } from "../bus/pilox-schema.ts";
import type { Config } from "../config/index.ts";
import { peerId, type Peer } from "../federation/index.ts";
import { bearerMatches } from "../secrets/index.ts";
import { signHex, verifyHex, type Ed25519Key } from "../identity/index.ts";
import { MAX_JSON_DEPTH, parseJson } from "../json/index.ts";
import type { Logger } from "../log/index.ts";
import type { WanMetrics } from "../metrics/index.ts";
import { BodyTooLargeError, RateLimiter, readBounded } from "../net/index.ts";
import type { Nats } from "./connect.ts";
import { Puller } from "./pull.ts";
import { frameMsgId, HDR, sha256Hex, signingString } from "./frame.ts";
import type { DeadLetter } from "./receiver.ts";

export const PUBLISH_PATH = "/v1/publish";
const MAX_URL_BYTES = 4096;

export type Envelope = v.InferOutput<typeof WAN_ENVELOPE>;

/**
 * The envelope in either of the reference's body shapes: bare, or `{wanEnvelope, meshTrace}`
 * (the trace is not kept: the ingress message has no place for it).
 */
function unwrapBody(value: unknown): unknown {
  if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.hasOwn(value, "wanEnvelope")) return (value as { wanEnvelope: unknown }).wanEnvelope;
  return value;
}

/** The first schema problem, as the bridge reports it: `{instancePath, message}`. */
export function envelopeProblem(issues: readonly v.BaseIssue<unknown>[]): { instancePath: string; message: string } {
  const i = issues[0]!;
  const path = (i.path ?? []).map((p) => String((p as { key: unknown }).key));
  return { instancePath: path.length ? "/" + path.join("/") : "", message: i.message };
}

/** A stable UUID for one envelope (the ingress event id), from what identifies its NATS message. */
function eventIdFor(key: string): string {
  const h = createHash("sha256").update(`pilox-mesh-wan-ingest\n${key}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface PiloxDeps {
  bus: () => MeshBus;
  config: () => Config;
  peers: () => ReadonlyMap<string, Peer>;
  identity: () => Ed25519Key;
  /** Our own keys (current and next): our own publishes are ingested too. */
  ownKeys: () => { kid: string; publicKey: KeyObject }[];
  publishToken: () => Buffer | undefined;
  js: () => JetStreamClient | undefined;
  nats: Nats;
  marksHash: string;
  marksFile?: string;
  deadLetter: (d: DeadLetter) => Promise<void>;
  termWithReason: () => boolean;
  metrics: WanMetrics;
  log: Logger;
}

type SigCheck = { ok: true; signed: boolean } | { ok: false; reason: string; detail: string };

export class Pilox {
  readonly #pull: Puller;
  /** Highest stream sequence ingested (embedded backend: kept in marksFile). */
  #high = 0;
  #ingested = 0;
  #seq = 0;
  readonly #limit: RateLimiter;

  constructor(private readonly d: PiloxDeps) {
    this.#pull = new Puller({ what: "Pilox envelope", ready: () => d.bus().backend.isReady(), batch: () => d.config().wan.fetch_batch, handle: (m) => this.#handle(m), log: d.log });
    this.#limit = new RateLimiter(() => d.config().wan.pilox.publish_rate_per_second);
    const kept = readMemoryFile(d.marksFile, "Pilox ingest memory", d.log) as { high?: unknown } | undefined;
    this.#high = Number(kept?.high) || 0;
  }

  attach(consumer: Consumer | undefined): void {
    this.#pull.attach(consumer);
  }

  start(): void {
    this.#pull.start();
  }

  /** Our signature, when present, must verify; without one, only with accept_unsigned. */
  #checkSignature(subject: string, msgId: string | undefined, h: (n: string) => string | undefined, body: Uint8Array): SigCheck {
    const sender = h(HDR.sender);
    const seq = h(HDR.seq);
    const kid = h(HDR.kid);
    const sig = h(HDR.sig);
    if (!sender && !seq && !kid && !sig) return this.d.config().wan.pilox.accept_unsigned ? { ok: true, signed: false } : { ok: false, reason: "unsigned", detail: "no signature headers (wan.pilox.accept_unsigned is off)" };
    if (!sender || !seq || !kid || !sig || !msgId || !/^[1-9][0-9]{0,15}$/.test(seq)) return { ok: false, reason: "unsigned", detail: "incomplete signature headers" };
    const own = sender === this.d.config().instance.origin;
    const keys = own ? this.d.ownKeys() : (this.d.peers().get(sender)?.keys ?? null);
    if (!keys) return { ok: false, reason: "unknown_sender", detail: sender.slice(0, 256) };
    const key = keys.find((k) => k.kid === kid);
    if (!key) return { ok: false, reason: "unknown_kid", detail: kid.slice(0, 128) };
    if (msgId !== frameMsgId(peerId(sender), Number(seq))) return { ok: false, reason: "bad_signature", detail: "Nats-Msg-Id does not match sender and sequence" };
    if (!verifyHex(key.publicKey, signingString({ subject, msgId, sender, seq: Number(seq), kid, bodySha256Hex: sha256Hex(body) }), sig)) return { ok: false, reason: "bad_signature", detail: "signature does not verify" };
    return { ok: true, signed: true };
  }

  /** The envelope of a message, or why it is refused. */
  #envelopeOf(m: { subject: string; msgId: string | undefined; header: (n: string) => string | undefined; data: Uint8Array }): { ok: true; envelope: Envelope } | { ok: false; reason: string; detail: string } {
    if (m.data.length > this.d.config().wan.pilox.max_envelope_bytes) return { ok: false, reason: "oversized", detail: `${m.data.length} bytes` };
    const sig = this.#checkSignature(m.subject, m.msgId, m.header, m.data);
    if (!sig.ok) return sig;
    const json = parseJson(Buffer.from(m.data).toString("utf8"), MAX_JSON_DEPTH);
    if (!json.ok) return { ok: false, reason: json.reason === "too_deep" ? "too_deep" : "invalid_json", detail: json.detail };
    const input = unwrapBody(json.value);
    const env = v.safeParse(WAN_ENVELOPE, input);
    if (!env.success) {
      const p = envelopeProblem(env.issues);
      return { ok: false, reason: "invalid_envelope", detail: `${p.instancePath || "/"}: ${p.message}` };
    }
    // What was checked is what is delivered: the input, never the schema's rebuilt copy.
    return { ok: true, envelope: input as Envelope };
  }

  /** What Pilox's ingress publishes for an envelope (wire-v1 §6.1, vector V4's shape). */
  #busMessage(envelope: Envelope, key: string): JsonObject {
    return {
      type: "mesh.wan.envelope",
      payload: envelope as unknown as JsonObject,
      timestamp: new Date().toISOString(),
      meshMeta: { v: 1, producer: "pilox-core", eventId: eventIdFor(key), correlationId: envelope.correlationId },
    };
  }

  async #handle(m: JsMsg): Promise<void> {
    const cfg = this.d.config().wan;
    const onRedis = this.d.marksFile === undefined;
    // Embedded: the highest stream sequence ingested, in a file. Redis: the set of ingested
    // sequences, checked and recorded with the publish in one step (replicas share it).
    if (!onRedis && m.seq <= this.#high) return this.#repeat(m);
    if (m.info.deliveryCount > cfg.max_attempts) return this.#dead(m, "attempts_exhausted", `${m.info.deliveryCount} deliveries`);
    const msgId = m.headers?.get("Nats-Msg-Id") || undefined;
    const got = this.#envelopeOf({ subject: m.subject, msgId, header: (n) => m.headers?.get(n) || undefined, data: m.data });
    if (!got.ok) return this.#dead(m, got.reason, got.detail);
    const key = msgId ? `id:${msgId}` : `seq:${m.info.stream}:${m.seq}`;
    const items = [{ channel: PILOX_SYSTEM_EVENTS, message: this.#busMessage(got.envelope, key) }];
    const field = `ingest:${m.info.stream}`;
    try {
      const r = onRedis
        ? await this.d.bus().publishOnce(items, { v1Only: true }, { hash: this.d.marksHash, field, seq: m.seq })
        : { duplicate: false, ...(await this.d.bus().publishMarked(items, { v1Only: true }, { hash: this.d.marksHash, field, value: String(m.seq) })) };
      if (r.duplicate) return this.#repeat(m);
      if (r.refused.length) return this.#dead(m, r.refused[0]!.reason, r.refused[0]!.detail);
    } catch (err) {
      if (err instanceof BusUnavailableError) return this.#busy(m);
      throw err;
    }
    this.#high = Math.max(this.#high, m.seq);
    this.#persist();
    this.#ingested++;
    this.d.metrics.delivered.inc({ peer: "pilox-ingest" });
    await m.ackAck().catch(() => {});
  }

  async #repeat(m: JsMsg): Promise<void> {
    this.d.metrics.duplicates.inc({ layer: "receiver" });
    await m.ackAck().catch(() => {});
  }

  #persist(): void {
    if (this.d.marksFile) writeMemoryFile(this.d.marksFile, { high: this.#high });
  }

  #busy(m: JsMsg): void {
    this.d.log.limited("wan-ingest-busy", "warn", "local bus unavailable; Pilox ingest paused");
    m.nak(1_000);
  }

  async #dead(m: JsMsg, reason: string, detail: string): Promise<void> {
    try {
      await this.d.deadLetter({ reason, detail, msg: m });
    } catch {
      m.nak(2_000);
      return;
    }
    this.d.metrics.rejected.inc({ reason });
    this.d.metrics.dlq.inc({ reason });
    this.d.log.limited(`wan-ingest-refused-${reason}`, "warn", "Pilox envelope refused; moved to the dead-letter stream", { reason, detail, subject: m.subject });
    if (this.d.termWithReason()) m.term(reason);
    else m.term();
  }

  /** `pilox-mesh wan dlq replay` of an ingest dead letter: checked again, ingested once. */
  async replay(r: { subject: string; msgId: string | undefined; header: (n: string) => string | undefined; data: Uint8Array; key: string }): Promise<{ ok: true; delivered: number; refused: [] } | { ok: false; reason: string; detail: string }> {
    const got = this.#envelopeOf(r);
    if (!got.ok) return got;
    const field = `replayed:${r.key}`;
    const bus = this.d.bus();
    if (!this.d.marksFile && (await bus.backend.readMarks(this.d.marksHash, [PILOX_SYSTEM_EVENTS])).has(field)) return { ok: false, reason: "already_delivered", detail: "this envelope was replayed before" };
    const res = await bus.publishMarked([{ channel: PILOX_SYSTEM_EVENTS, message: this.#busMessage(got.envelope, r.key) }], { v1Only: true }, { hash: this.d.marksHash, field, value: new Date().toISOString() });
    if (res.refused.length) return { ok: false, reason: res.refused[0]!.reason, detail: res.refused[0]!.detail };
    return { ok: true, delivered: res.published, refused: [] };
  }

  /**
   * POST /v1/publish, as the reference bridge answers it (same order of checks, statuses and
   * error bodies), on the public listener. The NATS body is the validated envelope re-serialised
   * (or `{wanEnvelope, meshTrace}` with a valid traceparent), with `Nats-Msg-Id` and our
   * signature headers.
   */
  routes(): Hono<{ Variables: { clientIp: string } }> {
    const app = new Hono<{ Variables: { clientIp: string } }>();
    app.post(PUBLISH_PATH, async (c) => {
      if (Buffer.byteLength(c.req.url) > MAX_URL_BYTES) return c.json({ error: "uri_too_long" }, 414);
      const token = this.d.publishToken();
      const h = c.req.header("authorization") ?? "";
      if (!bearerMatches(h, token)) return c.json({ error: "unauthorized" }, 401);
      if (!this.#limit.take(c.get("clientIp"))) return c.json({ error: "rate_limited" }, 429);
      const text = await readRequest(c, this.d.config().wan.pilox.max_envelope_bytes);
      if (text === null) return c.json({ error: "payload_too_large" }, 413);
      const json = text.trim() === "" ? { ok: true as const, value: {} } : parseJson(text, MAX_JSON_DEPTH);
      if (!json.ok) return c.json({ error: "invalid_json" }, 400);
      const env = v.safeParse(WAN_ENVELOPE, json.value);
      if (!env.success) return c.json({ error: "invalid_envelope", ...envelopeProblem(env.issues) }, 400);
      // Checked, not rebuilt: the envelope published is the one received.
      const envelope = json.value as Envelope;
      const trace = traceOf(c.req.header("traceparent"), c.req.header("tracestate"));
      const body = trace ? JSON.stringify({ wanEnvelope: envelope, meshTrace: { v: 1, ...trace } }) : JSON.stringify(envelope);
      const js = this.d.js();
      if (!js) return c.json({ error: "nats_unavailable", correlationId: envelope.correlationId }, 503);
      try {
        await this.#publish(js, body);
      } catch (err) {
        this.d.log.limited("wan-publish", "warn", "POST /v1/publish: NATS publish failed", { error: (err as Error).message });
        return c.json({ error: "nats_unavailable", correlationId: envelope.correlationId }, 503);
      }
      return c.json({ accepted: true, correlationId: envelope.correlationId }, 202);
    });
    return app;
  }

  async #publish(js: JetStreamClient, body: string): Promise<void> {
    const c = this.d.config();
    const subject = c.wan.pilox.subjects[0]!;
    const key = this.d.identity();
    const origin = c.instance.origin;
    // Per-process sequence in microseconds: unique ids without a file write per request.
    this.#seq = Math.max(this.#seq + 1, Date.now() * 1000);
    const msgId = frameMsgId(peerId(origin), this.#seq);
    const sig = signHex(key, signingString({ subject, msgId, sender: origin, seq: this.#seq, kid: key.kid, bodySha256Hex: sha256Hex(body) }));
    const h = this.d.nats.headers();
    h.set(HDR.sender, origin);
    h.set(HDR.seq, String(this.#seq));
    h.set(HDR.kid, key.kid);
    h.set(HDR.sig, sig);
    await js.publish(subject, body, { msgID: msgId, headers: h, timeout: 5_000 });
  }

  status() {
    return { ingested: this.#ingested, highestStreamSeq: this.#high || null };
  }

  close(): Promise<void> {
    return this.#pull.close();
  }
}

/** The request body as text, or null past `max` bytes (read no further than that). */
async function readRequest(c: Context, max: number): Promise<string | null> {
  try {
    return await readBounded(c.req.raw, max);
  } catch (err) {
    if (err instanceof BodyTooLargeError) return null;
    throw err;
  }
}
