/**
 * What a registry accepts, for a POST and for a record merged from a peer alike: a valid
 * record, proofs that verify, authorship (a later version signed by a key bound to the handle;
 * the first signed version binds its keys, and a version signed by a bound key that lists new
 * keys rotates them), a growing sequence, an `updatedAt` that does not go back nor run ahead of
 * the clock, and tombstones that beat every older version.
 */
import { canonicalize } from "../canon/index.ts";
import { publicKeyFromHex, signHex, verifyHex, verifyHexOf, type Ed25519Key } from "../identity/index.ts";
import { contentDigest } from "./digest.ts";
import { verifyProofV1, verifyProofV2 } from "./proof.ts";
import { checkRecord, type RegistryRecord } from "./record.ts";
import type { Entry, Tombstone } from "./store.ts";

export const TOMBSTONE_SCHEMA = "pilox-registry-tombstone-v1";
export const TOMBSTONE_PROOF = "pilox-registry-tombstone-ed25519-v1";
export const REGISTRAR_PROOF = "pilox-registry-registrar-ed25519-v1";

export interface WritePolicy {
  /** Refuse records without proof v2 (authorship). */
  requireProof: boolean;
  /** How far ahead of our clock `updatedAt` may be. */
  maxFutureSkewMs: number;
  now: number;
  /** Merging from a peer: equal sequences are settled by digest instead of refused (convergence). */
  merge?: boolean;
  /**
   * A record from a peer speaking the reference's protocol (stock Pilox registries sign with
   * proof v1 at best): a verified proof v1 stands in for v2 under requireProof. It binds no
   * key, so a later v2 version from the handle's owner takes over, never the reverse.
   */
  acceptV1?: boolean;
}

export type Refusal = { ok: false; status: 400 | 403 | 409; code: string; reason: string };
export { contentDigest };

export type Decision = { ok: true; seq: number; keys: string[]; unchanged?: true } | Refusal;

const refuse = (status: 400 | 403 | 409, code: string, reason: string): Refusal => ({ ok: false, status, code, reason });

export function decideRecord(current: Entry | undefined, rec: RegistryRecord, p: WritePolicy): Decision {
  const check = checkRecord(rec);
  if (!check.ok) return refuse(400, "invalid_record", `${check.instancePath || "/"}: ${check.message}`);
  const v1 = verifyProofV1(rec);
  if (!v1.ok) return refuse(409, "proof_verification_failed", v1.reason);
  const v2 = verifyProofV2(rec);
  if (!v2.ok) return refuse(409, "proof_verification_failed", v2.reason);
  if (p.requireProof && !v2.signed && !(p.acceptV1 && v1.signed)) return refuse(403, "policy_denied", p.acceptV1 ? "proof_required: a record from this peer needs a proof v1 or v2 that verifies" : "proof_required: a record needs proof v2 (pilox-mesh registry sign)");
  const updated = Date.parse(rec.updatedAt);
  if (updated > p.now + p.maxFutureSkewMs) return refuse(409, "stale_updatedAt", "updatedAt_in_future: updatedAt is ahead of this registry's clock");
  const keys = v2.signed ? (rec.publicKeys?.ed25519 ?? []).map((k) => k.publicKeyHex.toLowerCase()) : [];
  if (!current) return { ok: true, seq: v2.signed ? v2.seq! : 1, keys };

  if (current.keys.length > 0) {
    // Authorship: only a key bound to the handle speaks for it (rotation included).
    if (!v2.signed) return refuse(409, "proof_verification_failed", "unsigned_over_signed: the handle is bound to keys; an unsigned version cannot replace it");
    if (!current.keys.includes(v2.publicKeyHex!)) return refuse(409, "proof_verification_failed", "not_signed_by_bound_key: the version is not signed by a key bound to this handle");
  }
  const seq = v2.signed ? v2.seq! : current.seq + 1;
  if (current.deleted) {
    if (seq <= current.seq) return refuse(409, "stale_updatedAt", "deleted: a tombstone with a higher or equal sequence stands");
    return { ok: true, seq, keys };
  }
  const prev = current.body as RegistryRecord;
  // The same record again (a publisher retrying after a timeout) is a success that writes
  // nothing, as the reference answers it (201); merging, it is no change.
  if (!p.merge && contentDigest(rec) === contentDigest(prev)) return { ok: true, seq: current.seq, keys: current.keys, unchanged: true };
  const prevUpdated = Date.parse(prev.updatedAt);
  if (v2.signed && seq < current.seq) return refuse(409, "stale_updatedAt", `stale_seq: sequence ${seq} is below the stored ${current.seq}`);
  if (v2.signed && seq === current.seq) {
    // The same version again is no change; another one at the same sequence is a conflict,
    // which peers settle the same way everywhere (the larger digest wins).
    const a = contentDigest(rec);
    const b = contentDigest(prev);
    if (a === b) return refuse(409, "stale_updatedAt", "unchanged: this version is already stored");
    if (!p.merge || a < b) return refuse(409, "stale_updatedAt", `stale_seq: sequence ${seq} is already stored with other content`);
    return { ok: true, seq, keys };
  }
  if (updated <= prevUpdated && !(p.merge && v2.signed)) return refuse(409, "stale_updatedAt", `updatedAt ${rec.updatedAt} is not later than the stored ${prev.updatedAt}`);
  if (updated < prevUpdated) return refuse(409, "stale_updatedAt", `updatedAt ${rec.updatedAt} goes back from ${prev.updatedAt}`);
  return { ok: true, seq, keys };
}

function tombstoneSignedString(t: Pick<Tombstone, "schema" | "handle" | "seq" | "deletedAt">): string {
  return canonicalize({ type: TOMBSTONE_PROOF, schema: t.schema, handle: t.handle, seq: t.seq, deletedAt: t.deletedAt });
}

export function signTombstone(handle: string, seq: number, key: Ed25519Key, deletedAt = new Date().toISOString(), signer?: string): Tombstone {
  const t = { schema: TOMBSTONE_SCHEMA, handle, seq, deletedAt } as const;
  return { ...t, proof: { type: TOMBSTONE_PROOF, publicKeyHex: key.publicKeyHex, sigHex: signHex(key, tombstoneSignedString(t)), ...(signer ? { signer } : {}) } };
}

/**
 * A delete: signed by a key bound to the handle, or by one of `registryKeys` (an operator's
 * delete, signed by a registry), with a sequence above the stored one.
 */
export function decideTombstone(current: Entry | undefined, t: unknown, registryKeys: readonly string[]): Decision {
  const x = t as Partial<Tombstone> | null;
  if (!x || typeof x !== "object" || x.schema !== TOMBSTONE_SCHEMA || typeof x.handle !== "string" || typeof x.seq !== "number" || !Number.isSafeInteger(x.seq) || typeof x.deletedAt !== "string") {
    return refuse(400, "invalid_tombstone", "expected {schema: pilox-registry-tombstone-v1, handle, seq, deletedAt, proof}");
  }
  const p = x.proof;
  if (!p || p.type !== TOMBSTONE_PROOF || typeof p.publicKeyHex !== "string" || !/^[0-9a-f]{64}$/.test(p.publicKeyHex) || typeof p.sigHex !== "string" || !/^[0-9a-fA-F]{128}$/.test(p.sigHex)) {
    return refuse(400, "invalid_tombstone", "tombstone proof missing or malformed");
  }
  if (!verifyHex(publicKeyFromHex(p.publicKeyHex), tombstoneSignedString(x as Tombstone), p.sigHex)) return refuse(409, "proof_verification_failed", "bad_signature");
  if (!current) return refuse(409, "proof_verification_failed", "not_found: nothing to delete");
  const allowed = current.keys.includes(p.publicKeyHex) || registryKeys.includes(p.publicKeyHex);
  if (!allowed) return refuse(409, "proof_verification_failed", "not_signed_by_bound_key: the delete is signed neither by a key bound to this handle nor by a registry");
  if (x.seq <= current.seq) return refuse(409, "stale_updatedAt", `stale_seq: sequence ${x.seq} is not above the stored ${current.seq}`);
  return { ok: true, seq: x.seq, keys: current.keys };
}

/**
 * Our countersignature on a record we accepted: who vouched for it, over its content digest
 * (`digest` when the caller already computed contentDigest(rec)).
 */
export function countersign(rec: RegistryRecord, key: Ed25519Key, origin: string, digest = contentDigest(rec)): RegistryRecord {
  const registrar = { type: REGISTRAR_PROOF, origin, kid: key.kid, publicKeyHex: key.publicKeyHex, digest, sigHex: signHex(key, canonicalize({ type: REGISTRAR_PROOF, origin, digest })) };
  return { ...rec, proof: { ...(rec.proof ?? {}), registrar } };
}

type RegistrarProof = { type?: unknown; origin?: unknown; publicKeyHex?: unknown; digest?: unknown; sigHex?: unknown };

/** Which key countersigned `rec` (when the signature and digest hold). */
export function registrarOf(rec: RegistryRecord): string | undefined {
  const by = registrarClaim(rec, contentDigest(rec));
  if (by === undefined) return undefined;
  const r = rec.proof!["registrar"] as RegistrarProof;
  return verifyHexOf(by, canonicalize({ type: REGISTRAR_PROOF, origin: r.origin, digest: r.digest }), r.sigHex as string) ? by : undefined;
}

/**
 * The key `rec`'s countersignature names, when it is well formed and over `digest` (the
 * record's contentDigest), without verifying its signature: for a record whose authenticity
 * something else already proves (a change-feed page signed by a pinned key covers every byte
 * of its changes, this countersignature included).
 */
export function registrarClaim(rec: RegistryRecord, digest: string): string | undefined {
  const r = rec.proof?.["registrar"] as RegistrarProof | undefined;
  if (!r || r.type !== REGISTRAR_PROOF || typeof r.origin !== "string" || typeof r.publicKeyHex !== "string" || !/^[0-9a-f]{64}$/.test(r.publicKeyHex)) return undefined;
  if (typeof r.sigHex !== "string" || !/^[0-9a-fA-F]{128}$/.test(r.sigHex) || r.digest !== digest) return undefined;
  return r.publicKeyHex;
}
