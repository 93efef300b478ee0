/**
 * The WAN frame: 1..N bus messages in one NATS message, signed by the sending site's Ed25519
 * instance key. The signature covers a domain-separated string naming the subject, the
 * `Nats-Msg-Id`, the sender, its sequence, the key id and the body's SHA-256, so a frame copied
 * onto another site's subject, or given another id or sequence, fails as forged. Per-site keys,
 * not the shared bus HMAC: a site holding the bus key, or the NATS operator, cannot speak for
 * another site. docs/wire-formats.md documents every byte.
 */
import { createHash } from "node:crypto";
import type { JsonObject, TraceContext } from "../bus/index.ts";
import { signHex, verifyHex, type Ed25519Key } from "../identity/index.ts";
import type { Peer } from "../federation/index.ts";

export const FRAME_DOMAIN = "pilox-mesh-wan-frame-v1";
/** Our headers (the `Nats-` prefix is the server's). */
export const HDR = {
  sender: "Pilox-Mesh-Sender",
  seq: "Pilox-Mesh-Seq",
  kid: "Pilox-Mesh-Kid",
  sig: "Pilox-Mesh-Sig",
} as const;

export interface FrameEntry {
  channel: string;
  message: JsonObject;
  /** The W3C trace context the message was published with (meshExt on the sender's bus). */
  trace?: TraceContext;
}

/** What travels: the body bytes and the headers, exactly as written to disk before the first send. */
export interface SealedFrame {
  subject: string;
  msgId: string;
  seq: number;
  headers: Record<string, string>;
  body: string;
  messages: number;
}

/** One entry as it stands in a frame body. */
export function entryText(e: FrameEntry): string {
  return JSON.stringify(e.trace ? { channel: e.channel, message: e.message, trace: e.trace } : { channel: e.channel, message: e.message });
}

export function frameBody(entries: readonly FrameEntry[]): string {
  return frameBodyOf(entries.map(entryText));
}

/** A frame body from entries already in their text form (entryText). */
export function frameBodyOf(texts: readonly string[]): string {
  return `{"v":1,"messages":[${texts.join(",")}]}`;
}

export function sha256Hex(body: string | Uint8Array): string {
  return createHash("sha256").update(body).digest("hex");
}

export function signingString(o: { subject: string; msgId: string; sender: string; seq: number; kid: string; bodySha256Hex: string }): string {
  return [FRAME_DOMAIN, o.subject, o.msgId, o.sender, String(o.seq), o.kid, o.bodySha256Hex].join("\n");
}

/** A frame's `Nats-Msg-Id`: the sender's peer id and its sequence (stable across retries). */
export function frameMsgId(senderId: string, seq: number): string {
  return `${senderId}-${seq}`;
}

/** Entries as objects, or already as text (a sender whose queue holds them that way). */
export type FrameContent = { entries: readonly FrameEntry[] } | { texts: readonly string[] };

export function sealFrame(o: { key: Ed25519Key; sender: string; senderId: string; subject: string; seq: number } & FrameContent): SealedFrame {
  const body = "texts" in o ? frameBodyOf(o.texts) : frameBody(o.entries);
  const messages = "texts" in o ? o.texts.length : o.entries.length;
  const msgId = frameMsgId(o.senderId, o.seq);
  const sig = signHex(o.key, signingString({ subject: o.subject, msgId, sender: o.sender, seq: o.seq, kid: o.key.kid, bodySha256Hex: sha256Hex(body) }));
  return {
    subject: o.subject,
    msgId,
    seq: o.seq,
    headers: { [HDR.sender]: o.sender, [HDR.seq]: String(o.seq), [HDR.kid]: o.key.kid, [HDR.sig]: sig },
    body,
    messages,
  };
}

export type FrameRejectReason = "unsigned" | "unknown_sender" | "not_wan_peer" | "wrong_subject" | "unknown_kid" | "bad_signature" | "malformed";

export type FrameCheck = { ok: true; peer: Peer; seq: number } | { ok: false; reason: FrameRejectReason; detail: string };

/**
 * Checks a received frame's headers and signature against the federation's peers. `expected`
 * is the subject the frame must have been published on for this sender (ours as destination).
 */
export function verifyFrame(o: {
  subject: string;
  msgId: string | undefined;
  header: (name: string) => string | undefined;
  body: Uint8Array;
  peers: ReadonlyMap<string, Peer>;
  expectedSubject: (peer: Peer) => string;
  senderId: (peer: Peer) => string;
}): FrameCheck {
  const sender = o.header(HDR.sender);
  const seqText = o.header(HDR.seq);
  const kid = o.header(HDR.kid);
  const sig = o.header(HDR.sig);
  if (!sender || !seqText || !kid || !sig || !o.msgId) return { ok: false, reason: "unsigned", detail: "missing signature headers or Nats-Msg-Id" };
  const peer = o.peers.get(sender);
  if (!peer) return { ok: false, reason: "unknown_sender", detail: sender.slice(0, 256) };
  if (peer.transport !== "wan") return { ok: false, reason: "not_wan_peer", detail: `${sender} is not configured with transport = "wan"` };
  if (!/^[1-9][0-9]{0,15}$/.test(seqText)) return { ok: false, reason: "malformed", detail: "bad sequence header" };
  const seq = Number(seqText);
  if (o.subject !== o.expectedSubject(peer)) return { ok: false, reason: "wrong_subject", detail: `published on ${o.subject}` };
  if (o.msgId !== frameMsgId(o.senderId(peer), seq)) return { ok: false, reason: "bad_signature", detail: "Nats-Msg-Id does not match sender and sequence" };
  const key = peer.keys.find((k) => k.kid === kid);
  if (!key) return { ok: false, reason: "unknown_kid", detail: kid.slice(0, 128) };
  const signed = signingString({ subject: o.subject, msgId: o.msgId, sender, seq, kid, bodySha256Hex: sha256Hex(o.body) });
  if (!verifyHex(key.publicKey, signed, sig)) return { ok: false, reason: "bad_signature", detail: "signature does not verify" };
  return { ok: true, peer, seq };
}
