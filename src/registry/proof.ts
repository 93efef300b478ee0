/**
 * Record proofs. v1 is the reference's (wire-v1 §5): Ed25519 over canon({schema, handle,
 * updatedAt, agentCardUrl}) by the record's own key named `signingKid`, checked in the
 * reference's order with its reason names. It proves consistency, not authorship.
 *
 * v2 is ours, nested as `proof.v2` (stock validators allow extra keys in proof):
 * `{type: "pilox-registry-record-ed25519-v2", kid, seq, sigHex}` with sigHex Ed25519 over
 * canon({type, kid, seq, record: the record without proof}): the whole record, and a per-handle
 * sequence a registry requires to grow. Which keys may sign a handle is the store's business
 * (authorship binding); here only the signature.
 */
import { canonicalize } from "../canon/index.ts";
import { signHex, verifyHexOf, type Ed25519Key } from "../identity/index.ts";
import { withoutProof, type RegistryRecord } from "./record.ts";

export const PROOF_V1 = "pilox-registry-record-ed25519-v1";
export const PROOF_V1_HIVE = "hive-registry-record-ed25519-v1";
export const PROOF_V1_TYPES = new Set([PROOF_V1, PROOF_V1_HIVE]);

/**
 * A record's proof v1 type follows the family of its own schema: Pilox's registry service (and
 * its schemas) know only the `hive-` names, its app the `pilox-` ones.
 */
export function proofV1TypeFor(schema: unknown): string {
  return typeof schema === "string" && schema.startsWith("hive-") ? PROOF_V1_HIVE : PROOF_V1;
}
export const PROOF_V2 = "pilox-registry-record-ed25519-v2";

export type ProofResult = { ok: true; signed: boolean; publicKeyHex?: string } | { ok: false; reason: string };

const HEX128 = /^[0-9a-fA-F]{128}$/;
const HEX64 = /^[0-9a-fA-F]{64}$/;

function keyOf(rec: RegistryRecord, kid: unknown): string | undefined {
  const ed = (rec.publicKeys as { ed25519?: unknown } | undefined)?.ed25519;
  if (!Array.isArray(ed)) return undefined;
  const e = ed.find((k): k is { kid: unknown; publicKeyHex: unknown } => k !== null && typeof k === "object" && (k as { kid?: unknown }).kid === kid);
  return typeof e?.publicKeyHex === "string" && HEX64.test(e.publicKeyHex) ? e.publicKeyHex.toLowerCase() : undefined;
}

/** The four fields v1 signs, as the reference builds them. */
export function v1SignedString(rec: { schema: unknown; handle: unknown; updatedAt: unknown; agentCardUrl: unknown }): string {
  return canonicalize({ schema: rec.schema, handle: rec.handle, updatedAt: rec.updatedAt, agentCardUrl: rec.agentCardUrl });
}

/** Proof v1 exactly as the reference verifies it (same checks, same order, same reasons). */
export function verifyProofV1(rec: RegistryRecord): ProofResult {
  const proof = rec.proof;
  if (!proof || typeof proof !== "object") return { ok: true, signed: false };
  const sigHex = proof["sigHex"];
  if (sigHex === undefined || sigHex === null || sigHex === "") return { ok: true, signed: false };
  if (typeof sigHex !== "string" || !HEX128.test(sigHex)) return { ok: false, reason: "invalid_sig_hex" };
  if (!PROOF_V1_TYPES.has(proof["type"] as string)) return { ok: false, reason: "unsupported_proof_type" };
  const kid = proof["signingKid"];
  if (typeof kid !== "string" || !kid.trim()) return { ok: false, reason: "missing_signing_kid" };
  const pk = rec.publicKeys;
  if (!pk || typeof pk !== "object" || Array.isArray(pk) || !Array.isArray(pk.ed25519)) return { ok: false, reason: "missing_ed25519_public_keys" };
  const pkHex = keyOf(rec, kid);
  if (!pkHex) return { ok: false, reason: "signing_kid_not_in_public_keys" };
  let good: boolean;
  try {
    good = verifyHexOf(pkHex, v1SignedString(rec), sigHex);
  } catch {
    return { ok: false, reason: "verify_error" };
  }
  return good ? { ok: true, signed: true, publicKeyHex: pkHex } : { ok: false, reason: "bad_signature" };
}

export interface ProofV2 {
  type: typeof PROOF_V2;
  kid: string;
  seq: number;
  sigHex: string;
}

function v2SignedString(rec: RegistryRecord, kid: string, seq: number): string {
  return canonicalize({ type: PROOF_V2, kid, seq, record: withoutProof(rec) });
}

/** Proof v2 (ours): `{ok, signed: false}` when absent. */
export function verifyProofV2(rec: RegistryRecord): ProofResult & { seq?: number; kid?: string } {
  const v2 = rec.proof?.["v2"] as Partial<ProofV2> | undefined;
  if (v2 === undefined) return { ok: true, signed: false };
  if (v2 === null || typeof v2 !== "object" || Array.isArray(v2)) return { ok: false, reason: "v2_malformed" };
  if (v2.type !== PROOF_V2) return { ok: false, reason: "v2_unsupported_type" };
  if (typeof v2.seq !== "number" || !Number.isSafeInteger(v2.seq) || v2.seq < 0) return { ok: false, reason: "v2_bad_seq" };
  if (typeof v2.kid !== "string" || !v2.kid) return { ok: false, reason: "v2_missing_kid" };
  if (typeof v2.sigHex !== "string" || !HEX128.test(v2.sigHex)) return { ok: false, reason: "v2_invalid_sig_hex" };
  const pkHex = keyOf(rec, v2.kid);
  if (!pkHex) return { ok: false, reason: "v2_kid_not_in_public_keys" };
  const good = verifyHexOf(pkHex, v2SignedString(rec, v2.kid, v2.seq), v2.sigHex);
  return good ? { ok: true, signed: true, publicKeyHex: pkHex, seq: v2.seq, kid: v2.kid } : { ok: false, reason: "v2_bad_signature" };
}

/**
 * Signs a record with `key` named `kid` (which must be in publicKeys.ed25519, else it is
 * added): proof v1 (byte-identical to the reference's, of the record's own family), then v2 over the record with that proof's
 * body fields. The proof is placed last, as the reference's records carry it.
 */
export function signRecord(rec: RegistryRecord, key: Ed25519Key, o: { kid: string; signer?: string; seq: number }): RegistryRecord {
  const { proof: _old, ...body } = rec;
  const keys = body.publicKeys?.ed25519 ?? [];
  const listed = keys.find((k) => k.kid === o.kid);
  if (listed && listed.publicKeyHex.toLowerCase() !== key.publicKeyHex) throw new Error(`publicKeys.ed25519 lists kid ${o.kid} with another key`);
  const out: RegistryRecord = listed ? (body as RegistryRecord) : ({ ...body, publicKeys: { ...body.publicKeys, ed25519: [...keys, { kid: o.kid, publicKeyHex: key.publicKeyHex }] } } as RegistryRecord);
  const proof: Record<string, unknown> = { type: proofV1TypeFor(out.schema), signer: o.signer ?? `urn:pilox-mesh:key:${key.kid}`, signingKid: o.kid, sigHex: signHex(key, v1SignedString(out)) };
  proof["v2"] = { type: PROOF_V2, kid: o.kid, seq: o.seq, sigHex: signHex(key, v2SignedString(out, o.kid, o.seq)) } satisfies ProofV2;
  return { ...out, proof } as RegistryRecord;
}
