/**
 * Signed peer manifests (wire-v1 §3). The Pilox body is {payload, sigHex} with sigHex over
 * canon(payload). Our extension sits beside it as `manifestExt` = {v: 1, seq, expiresAt,
 * sigHex}, signed over canon({v, seq, expiresAt, payloadSigHex}) by the same key, so a stock
 * verifier still accepts the body while we refuse an older (lower seq) or expired manifest:
 * replaying an old roster cannot re-admit a removed peer.
 */
import type { KeyObject } from "node:crypto";
import * as v from "valibot";
import { looseObject, strictObject } from "../schema/index.ts";
import { canonicalize } from "../canon/index.ts";
import { describeIssues } from "../bus/channels.ts";
import { signHex, verifyHex, type Ed25519Key } from "../identity/index.ts";
import { normalizeOrigin } from "./origin.ts";

export const MANIFEST_EXT = "manifestExt";
export const MAX_MANIFEST_BYTES = 1024 * 1024;
/** Peers one manifest may list. */
export const MAX_MANIFEST_PEERS = 10_000;

const HEX64 = v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/));
const Peer = looseObject({ origin: v.pipe(v.string(), v.maxLength(512)), ed25519PublicKeyHex: v.optional(HEX64) });
/** The reference strips unknown payload keys before verifying; we verify what was signed. */
const Payload = looseObject({ v: v.literal(1), issuedAt: v.optional(v.pipe(v.string(), v.isoTimestamp())), peers: v.pipe(v.array(Peer), v.maxLength(MAX_MANIFEST_PEERS)) });
const Ext = strictObject({ v: v.literal(1), seq: v.pipe(v.number(), v.integer(), v.minValue(0)), expiresAt: v.pipe(v.string(), v.isoTimestamp()), sigHex: v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{128}$/)) });
const Body = looseObject({ payload: v.unknown(), sigHex: v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{128}$/)), [MANIFEST_EXT]: v.optional(v.unknown()) });

export interface ManifestPeer {
  origin: string;
  ed25519PublicKeyHex?: string;
}

export interface ManifestPayload {
  v: 1;
  issuedAt?: string;
  peers: ManifestPeer[];
}

export interface SignedManifest {
  payload: ManifestPayload;
  sigHex: string;
  manifestExt?: { v: 1; seq: number; expiresAt: string; sigHex: string };
}

function extSignedString(seq: number, expiresAt: string, payloadSigHex: string): string {
  return canonicalize({ v: 1, seq, expiresAt, payloadSigHex: payloadSigHex.toLowerCase() });
}

/** The keys the reference keeps; it strips any other before verifying, so we never sign one. */
const PAYLOAD_KEYS = new Set(["v", "issuedAt", "peers"]);
const PEER_KEYS = new Set(["origin", "ed25519PublicKeyHex"]);

export class ManifestSignError extends Error {
  override name = "ManifestSignError";
}

/** Signs a payload (Pilox-compatible); with `seq`, adds our anti-rollback extension. */
export function signManifest(payload: ManifestPayload, key: Ed25519Key, ext?: { seq: number; expiresAt: string }): SignedManifest {
  const strip = "the reference strips unknown keys before verifying, so a stock peer could not verify it (extensions go in manifestExt)";
  for (const k of Object.keys(payload)) if (!PAYLOAD_KEYS.has(k)) throw new ManifestSignError(`payload.${k}: ${strip}`);
  if (!Array.isArray(payload.peers)) throw new ManifestSignError("payload.peers must be an array");
  payload.peers.forEach((peer, i) => {
    for (const k of Object.keys(peer ?? {})) if (!PEER_KEYS.has(k)) throw new ManifestSignError(`payload.peers[${i}].${k}: ${strip}`);
  });
  const sigHex = signHex(key, canonicalize(payload));
  const body: SignedManifest = { payload, sigHex };
  if (ext) body.manifestExt = { v: 1, seq: ext.seq, expiresAt: ext.expiresAt, sigHex: signHex(key, extSignedString(ext.seq, ext.expiresAt, sigHex)) };
  return body;
}

export type ManifestResult =
  | { ok: true; peers: ManifestPeer[]; seq?: number; expiresAt?: string; signer: number; issuedAt?: string; sigHex: string; unversioned?: true }
  | { ok: false; reason: "malformed" | "bad_signature" | "unversioned" | "rollback" | "expired"; detail: string };

export interface ManifestPolicy {
  /** Pinned signer keys; any one may sign. */
  signers: readonly KeyObject[];
  /** The highest seq accepted so far: a lower one is a rollback. */
  minSeq?: number;
  /** Refuse a manifest without our extension (default: accept, for stock Pilox signers). */
  requireExt?: boolean;
  /**
   * With requireExt: still accept a stock manifest without our extension when it has an
   * `issuedAt` later than `lastIssuedAt` (the same manifest again, same signature, is no
   * change): the issue time serves as the sequence, so an older roster cannot come back.
   */
  acceptUnversioned?: boolean;
  lastIssuedAt?: string;
  lastSigHex?: string;
  now?: number;
}

export function verifyManifest(body: unknown, p: ManifestPolicy): ManifestResult {
  const b = v.safeParse(Body, body);
  if (!b.success) return { ok: false, reason: "malformed", detail: describeIssues(b.issues) };
  const pl = v.safeParse(Payload, b.output.payload);
  if (!pl.success) return { ok: false, reason: "malformed", detail: describeIssues(pl.issues, "payload") };
  const signed = canonicalize(b.output.payload);
  const signer = p.signers.findIndex((k) => verifyHex(k, signed, b.output.sigHex));
  if (signer < 0) return { ok: false, reason: "bad_signature", detail: "sigHex does not verify with a pinned signer key" };
  const peers: ManifestPeer[] = [];
  for (const [i, peer] of pl.output.peers.entries()) {
    const origin = normalizeOrigin(peer.origin);
    if (!origin) return { ok: false, reason: "malformed", detail: `payload.peers[${i}].origin is not an origin` };
    peers.push(peer.ed25519PublicKeyHex ? { origin, ed25519PublicKeyHex: peer.ed25519PublicKeyHex.toLowerCase() } : { origin });
  }
  const rawExt = (b.output as Record<string, unknown>)[MANIFEST_EXT];
  const sigHex0 = b.output.sigHex.toLowerCase();
  const issuedAt = pl.output.issuedAt;
  if (rawExt === undefined) {
    if (p.acceptUnversioned) {
      if (!issuedAt) return { ok: false, reason: "unversioned", detail: "neither manifestExt nor payload.issuedAt: cannot rule out a rollback" };
      const last = p.lastIssuedAt ? Date.parse(p.lastIssuedAt) : Number.NEGATIVE_INFINITY;
      const at = Date.parse(issuedAt);
      const same = at === last && sigHex0 === p.lastSigHex;
      if (!same && at <= last) return { ok: false, reason: "rollback", detail: `issuedAt ${issuedAt} is not later than the accepted ${p.lastIssuedAt}` };
      return { ok: true, peers, signer, issuedAt, sigHex: sigHex0, unversioned: true };
    }
    if (p.requireExt || p.minSeq !== undefined) return { ok: false, reason: "unversioned", detail: "no manifestExt (sequence and expiry): cannot rule out a rollback" };
    return { ok: true, peers, signer, sigHex: sigHex0, ...(issuedAt ? { issuedAt } : {}) };
  }
  const e = v.safeParse(Ext, rawExt);
  if (!e.success) return { ok: false, reason: "malformed", detail: describeIssues(e.issues, MANIFEST_EXT) };
  const { seq, expiresAt, sigHex } = e.output;
  if (!verifyHex(p.signers[signer]!, extSignedString(seq, expiresAt, b.output.sigHex), sigHex)) {
    return { ok: false, reason: "bad_signature", detail: `${MANIFEST_EXT}.sigHex does not verify` };
  }
  if (Date.parse(expiresAt) <= (p.now ?? Date.now())) return { ok: false, reason: "expired", detail: `expired at ${expiresAt}` };
  if (p.minSeq !== undefined && seq < p.minSeq) return { ok: false, reason: "rollback", detail: `seq ${seq} is older than the accepted ${p.minSeq}` };
  return { ok: true, peers, seq, expiresAt, signer, sigHex: sigHex0, ...(issuedAt ? { issuedAt } : {}) };
}
