/**
 * Where messages from a federated mesh enter: POST /v1/federation/relay. Checks in this order:
 * body size and the client address's rate (before any cryptography), the token (EdDSA, bound
 * to this exact body, jti once), the peer's rate, then each message's channel against what the
 * peer may send. Accepted messages are re-sealed on the local bus with meshExt.origin = the
 * peer. Refusals get a generic body (no oracle); the reason goes to the audit log.
 */
import type { Context } from "hono";
import * as v from "valibot";
import { BusUnavailableError, MessageTooLargeError, SealError, type MeshBus } from "../bus/index.ts";
import { CHANNEL_NAME, describeIssues } from "../bus/channels.ts";
import { coreOf, type JsonObject } from "../bus/envelope/v1.ts";
import { MAX_JSON_DEPTH, parseJson } from "../json/index.ts";
import { strictObject } from "../schema/index.ts";
import type { Logger } from "../log/index.ts";
import type { AuditLog } from "./audit.ts";
import type { Peer } from "./peers.ts";
import type { RateLimiter } from "../net/index.ts";
import { verifyToken } from "./token.ts";
import type { TokenReplayStore } from "./replay-store.ts";

export const RELAY_PATH = "/v1/federation/relay";
/** Refusal reasons of the relay besides the token's own (their counters start at zero). */
export const RELAY_REFUSAL_REASONS = ["ip_rate_limited", "peer_rate_limited", "malformed_batch", "too_deep", "payload_too_large", "channel_not_allowed", "invalid_message", "oversized", "bus_unavailable"] as const;
export const MAX_BATCH = 10_000;

/** One message of a relay batch (and of a WAN frame): a channel and a message with an event id. */
/** The entries of RelayEntry (a WAN frame entry adds its trace to them). */
export const RELAY_ENTRY = {
  channel: CHANNEL_NAME,
  // Checked, not rebuilt: a rebuilt object (looseObject) would lose a "__proto__" key
  // that the sender's MAC covers.
  message: v.pipe(
    v.unknown(),
    v.check(hasEventId, "message must be an object with meshMeta.eventId (1-128 characters)"),
    v.transform((x) => x as JsonObject),
  ),
};
export const RelayEntry = strictObject(RELAY_ENTRY);

export const RelayBody = strictObject({
  messages: v.pipe(v.array(RelayEntry), v.maxLength(MAX_BATCH)),
});
export type RelayBatch = v.InferOutput<typeof RelayBody>;

function hasEventId(x: unknown): boolean {
  if (x === null || typeof x !== "object" || Array.isArray(x)) return false;
  const meta = Object.hasOwn(x, "meshMeta") ? (x as { meshMeta?: unknown }).meshMeta : undefined;
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) return false;
  const id = Object.hasOwn(meta, "eventId") ? (meta as { eventId?: unknown }).eventId : undefined;
  return typeof id === "string" && id.length >= 1 && id.length <= 128;
}

export interface InboundDeps {
  bus: () => MeshBus;
  ourOrigin: () => string;
  peers: () => ReadonlyMap<string, Peer>;
  policy: () => { leewaySeconds: number; maxLifetimeSeconds: number; hs256Secret?: Buffer };
  replay: TokenReplayStore;
  ipLimit: RateLimiter;
  peerLimit: RateLimiter;
  /** (peer, eventId) pairs already republished: retried batches are not delivered twice. */
  delivered: DeliveredSet;
  audit: AuditLog;
  log: Logger;
  onRefused: (reason: string) => void;
  onAccepted: (peer: string, n: number) => void;
}

/** Remembered across restarts (a journal): `add` then `commit` once per batch. */
export interface DeliveredSet {
  has(key: string): boolean;
  add(key: string): void;
  commit(): void;
}

/** A relay body nests a message three levels down: {messages: [{message: …}]}. */
const MAX_BODY_DEPTH = MAX_JSON_DEPTH + 3;

const refuse = (c: Context, status: 401 | 429 | 400 | 413 | 503, code: string) =>
  c.json({ error: { code, message: "federation request refused" } }, status);

/** The relay body was over federation.max_body_bytes: counted and audited like any refusal. */
export function relayTooLarge(c: Context, d: Pick<InboundDeps, "audit" | "onRefused">, client: string): Response {
  d.onRefused("payload_too_large");
  d.audit.refused({ direction: "inbound", client, reason: "payload_too_large" });
  return refuse(c, 413, "payload_too_large");
}

export async function handleRelay(c: Context, d: InboundDeps, client: string): Promise<Response> {
  const audit = (outcome: "accepted" | "refused", extra: Record<string, unknown>) =>
    outcome === "refused" ? d.audit.refused({ direction: "inbound", client, ...extra }) : d.audit.append({ direction: "inbound", outcome, client, ...extra });
  if (!d.ipLimit.take(client)) {
    d.onRefused("ip_rate_limited");
    audit("refused", { reason: "ip_rate_limited" });
    return refuse(c, 429, "rate_limited");
  }
  const body = new Uint8Array(await c.req.arrayBuffer());
  const token = c.req.header("x-pilox-federation-jwt") ?? c.req.header("x-hive-federation-jwt") ?? "";
  const r = await verifyToken(token, {
    audience: d.ourOrigin(),
    peers: d.peers(),
    ...d.policy(),
    replay: d.replay,
    body,
    requireBodyBinding: true,
  });
  if (!r.ok) {
    d.onRefused(r.reason);
    audit("refused", { reason: r.reason, detail: r.detail });
    return r.reason === "store_unavailable" ? refuse(c, 503, "unavailable") : refuse(c, 401, "unauthorized");
  }
  const peer = d.peers().get(r.peer)!;
  if (!d.peerLimit.take(peer.origin)) {
    d.onRefused("peer_rate_limited");
    audit("refused", { peer: peer.origin, reason: "peer_rate_limited" });
    return refuse(c, 429, "rate_limited");
  }
  // The whole batch is checked before any of it is published: a refusal is all or nothing.
  const json = parseJson(Buffer.from(body).toString("utf8"), MAX_BODY_DEPTH);
  if (!json.ok) {
    d.onRefused(json.reason === "too_deep" ? "too_deep" : "malformed_batch");
    audit("refused", { peer: peer.origin, reason: json.reason === "too_deep" ? "too_deep" : "malformed_batch", detail: json.detail });
    return c.json({ error: { code: "invalid_request", message: json.detail } }, 400);
  }
  const batch = v.safeParse(RelayBody, json.value);
  if (!batch.success) {
    d.onRefused("malformed_batch");
    audit("refused", { peer: peer.origin, reason: "malformed_batch", detail: describeIssues(batch.issues) });
    return c.json({ error: { code: "invalid_request", message: describeIssues(batch.issues) } }, 400);
  }
  let accepted = 0;
  let duplicates = 0;
  const refused: { index: number; reason: string }[] = [];
  const bus = d.bus();
  // Published together, in order: the bus takes them as one batch (one pipeline on Redis, one
  // journal write for their replay claims on the embedded bus) rather than one round each.
  const sent: { index: number; key: string; done: Promise<unknown> }[] = [];
  const inBatch = new Set<string>();
  for (const [index, { channel, message }] of batch.output.messages.entries()) {
    if (!peer.accept.has(channel)) {
      refused.push({ index, reason: "channel_not_allowed" });
      continue;
    }
    const meta = message["meshMeta"] as JsonObject;
    const key = `${peer.origin}\n${meta["eventId"] as string}`;
    if (d.delivered.has(key) || inBatch.has(key)) {
      duplicates++;
      continue;
    }
    inBatch.add(key);
    // Re-sealed with our key; meshMeta (and so the event id) is kept, the origin recorded.
    sent.push({ index, key, done: bus.publish(channel, { ...coreOf(message), meshMeta: meta }, { origin: peer.origin }) });
  }
  const outcomes = await Promise.allSettled(sent.map((s) => s.done));
  let unavailable = false;
  for (const [i, o] of outcomes.entries()) {
    const { index, key } = sent[i]!;
    if (o.status === "fulfilled") {
      d.delivered.add(key);
      accepted++;
    } else if (o.reason instanceof SealError) {
      refused.push({ index, reason: o.reason instanceof MessageTooLargeError ? "oversized" : "invalid_message" });
    } else if (o.reason instanceof BusUnavailableError) {
      unavailable = true;
    } else {
      d.delivered.commit();
      throw o.reason;
    }
  }
  if (unavailable) {
    // What was published stays marked; the sender retries the batch and those are skipped.
    d.delivered.commit();
    audit("refused", { peer: peer.origin, reason: "bus_unavailable", messages: accepted });
    return refuse(c, 503, "unavailable");
  }
  refused.sort((a, b) => a.index - b.index);
  d.delivered.commit();
  for (const x of refused) d.onRefused(x.reason);
  d.onAccepted(peer.origin, accepted);
  audit("accepted", { peer: peer.origin, messages: accepted, ...(duplicates ? { detail: `${duplicates} duplicates` } : {}), ...(refused.length ? { reason: `${refused.length} refused` } : {}) });
  return c.json({ accepted, duplicates, refused });
}
