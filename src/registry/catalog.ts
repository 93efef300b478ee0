/**
 * The signed catalog (GET /v1/records). `catalogProof` v1 is the reference's: Ed25519 over
 * canon({schema: "pilox-registry-catalog-v1", handles: sorted, issuedAt}) with the key it carries,
 * checked in the reference's order with its reasons (a `hive-` proof type signs the `hive-`
 * schema name), and `catalogProofAlt` the same in the other family. It covers names only. `catalogProofV2` (a sibling the reference ignores) also
 * covers content: the registry origin, key id, issue and expiry times, and a digest over every
 * (handle, seq, record digest), listed in `entries` so a reader can check each record it fetches.
 */
import { createHash } from "node:crypto";
import { canonicalize } from "../canon/index.ts";
import { publicKeyFromHex, signHex, verifyHex, type Ed25519Key } from "../identity/index.ts";

export const CATALOG_PROOF = "pilox-registry-catalog-ed25519-v1";
export const CATALOG_PROOF_HIVE = "hive-registry-catalog-ed25519-v1";
/** Which family's proof rides in `catalogProof` (registry.catalog_proof); the other in `catalogProofAlt`. */
export type CatalogFamily = "hive" | "pilox";
export const CATALOG_PROOF_V2 = "pilox-registry-catalog-ed25519-v2";
const SCHEMA_OF: Record<string, string> = {
  [CATALOG_PROOF]: "pilox-registry-catalog-v1",
  [CATALOG_PROOF_HIVE]: "hive-registry-catalog-v1",
};

export interface CatalogProof {
  type: string;
  issuedAt: string;
  signingKid: string;
  sigHex: string;
  publicKeyHex: string;
}

/** [handle, seq, record digest (hex)] */
export type CatalogEntry = [string, number, string];

export interface CatalogProofV2 {
  type: typeof CATALOG_PROOF_V2;
  origin: string;
  kid: string;
  publicKeyHex: string;
  issuedAt: string;
  expiresAt: string;
  digest: string;
  entries: CatalogEntry[];
}

export function catalogSignedString(handles: readonly string[], issuedAt: string, schema = SCHEMA_OF[CATALOG_PROOF]!): string {
  return canonicalize({ schema, handles: [...handles].sort(), issuedAt });
}

/** SHA-256 hex of canon(x): the digest of a record as catalogs and countersignatures name it. */
export function digestOf(x: unknown): string {
  return createHash("sha256").update(canonicalize(x)).digest("hex");
}

function entriesDigest(entries: readonly CatalogEntry[]): string {
  return digestOf([...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

function v2SignedString(p: Omit<CatalogProofV2, "entries" | "sigHex">): string {
  return canonicalize({ type: p.type, origin: p.origin, kid: p.kid, publicKeyHex: p.publicKeyHex, issuedAt: p.issuedAt, expiresAt: p.expiresAt, digest: p.digest });
}

function v1Proof(type: string, handles: readonly string[], key: Ed25519Key, kid: string, issuedAt: string): CatalogProof {
  return { type, issuedAt, signingKid: kid, sigHex: signHex(key, catalogSignedString(handles, issuedAt, SCHEMA_OF[type]!)), publicKeyHex: key.publicKeyHex };
}

/**
 * The catalog's proofs. Stock verifiers read only `catalogProof` and know one family each (Pilox's
 * registry service only `hive-`), so `catalogProof` is of `family` (registry.catalog_proof:
 * `hive` by default, the one stock verifier there is) and `catalogProofAlt` carries the same
 * proof in the other family.
 */
export function signCatalog(
  handles: readonly string[],
  key: Ed25519Key,
  o: { kid: string; issuedAt: string; origin?: string; expiresAt?: string; entries?: CatalogEntry[]; family?: CatalogFamily },
): { catalogProof: CatalogProof; catalogProofAlt: CatalogProof; catalogProofV2?: CatalogProofV2 & { sigHex: string } } {
  const [first, other] = o.family === "pilox" ? [CATALOG_PROOF, CATALOG_PROOF_HIVE] : [CATALOG_PROOF_HIVE, CATALOG_PROOF];
  const proofs = { catalogProof: v1Proof(first, handles, key, o.kid, o.issuedAt), catalogProofAlt: v1Proof(other, handles, key, o.kid, o.issuedAt) };
  if (!o.entries || !o.origin || !o.expiresAt) return proofs;
  const body = { type: CATALOG_PROOF_V2, origin: o.origin, kid: o.kid, publicKeyHex: key.publicKeyHex, issuedAt: o.issuedAt, expiresAt: o.expiresAt, digest: entriesDigest(o.entries) } as const;
  return { ...proofs, catalogProofV2: { ...body, entries: o.entries, sigHex: signHex(key, v2SignedString(body)) } };
}

export type CatalogCheck = { ok: true; publicKeyHex: string; v2?: CatalogProofV2 } | { ok: false; reason: string };

export interface CatalogPolicy {
  /** Pinned key: the catalog must be signed by it (else pubkey_mismatch). */
  publicKeyHex?: string;
  /** Evaluation time, ms (default now). */
  at?: number;
  /** Refuse a catalog issued longer ago than this (a replayed old listing): stale. */
  maxAgeSeconds?: number;
}

/** The reference's checks and reasons for v1, then freshness and v2 when present. */
export function verifyCatalog(body: unknown, p: CatalogPolicy = {}): CatalogCheck {
  if (!body || typeof body !== "object" || Array.isArray(body)) return { ok: false, reason: "bad_body" };
  const o = body as Record<string, unknown>;
  const handles = o["handles"];
  if (!Array.isArray(handles)) return { ok: false, reason: "missing_handles" };
  for (const h of handles) if (typeof h !== "string" || h.length < 8) return { ok: false, reason: "bad_handle_entry" };
  const proof = o["catalogProof"] as Record<string, unknown> | undefined;
  if (!proof || typeof proof !== "object") return { ok: false, reason: "missing_catalog_proof" };
  const schema = SCHEMA_OF[proof["type"] as string];
  if (!schema) return { ok: false, reason: "bad_proof_type" };
  const issuedAt = proof["issuedAt"];
  if (typeof issuedAt !== "string" || !issuedAt.trim()) return { ok: false, reason: "bad_issuedAt" };
  const sigHex = proof["sigHex"];
  const pubHex = proof["publicKeyHex"];
  if (typeof sigHex !== "string" || !/^[0-9a-fA-F]{128}$/.test(sigHex)) return { ok: false, reason: "bad_sig_hex" };
  if (typeof pubHex !== "string" || !/^[0-9a-fA-F]{64}$/.test(pubHex)) return { ok: false, reason: "bad_pub_hex" };
  if (p.publicKeyHex && p.publicKeyHex.trim().toLowerCase() !== pubHex.toLowerCase()) return { ok: false, reason: "pubkey_mismatch" };
  if (!verifyHex(publicKeyFromHex(pubHex), catalogSignedString(handles as string[], issuedAt, schema), sigHex)) return { ok: false, reason: "bad_signature" };
  const at = p.at ?? Date.now();
  const issued = Date.parse(issuedAt);
  if (p.maxAgeSeconds !== undefined) {
    if (Number.isNaN(issued)) return { ok: false, reason: "bad_issuedAt" };
    if (issued < at - p.maxAgeSeconds * 1000) return { ok: false, reason: "stale" };
    if (issued > at + 60_000) return { ok: false, reason: "issued_in_future" };
  }
  const rawV2 = o["catalogProofV2"];
  if (rawV2 === undefined) return { ok: true, publicKeyHex: pubHex.toLowerCase() };
  const v2 = rawV2 as Partial<CatalogProofV2 & { sigHex: string }>;
  if (!v2 || typeof v2 !== "object" || v2.type !== CATALOG_PROOF_V2) return { ok: false, reason: "v2_bad_proof_type" };
  if (typeof v2.publicKeyHex !== "string" || v2.publicKeyHex.toLowerCase() !== pubHex.toLowerCase()) return { ok: false, reason: "v2_key_mismatch" };
  if (typeof v2.sigHex !== "string" || !/^[0-9a-fA-F]{128}$/.test(v2.sigHex) || !Array.isArray(v2.entries)) return { ok: false, reason: "v2_malformed" };
  for (const e of v2.entries) {
    if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== "string" || typeof e[1] !== "number" || typeof e[2] !== "string") return { ok: false, reason: "v2_malformed" };
  }
  if (entriesDigest(v2.entries) !== v2.digest) return { ok: false, reason: "v2_digest_mismatch" };
  const listed = new Set(handles as string[]);
  if (v2.entries.length !== listed.size || !v2.entries.every((e) => listed.has(e[0]))) return { ok: false, reason: "v2_handles_mismatch" };
  if (!verifyHex(publicKeyFromHex(pubHex), v2SignedString(v2 as CatalogProofV2), v2.sigHex)) return { ok: false, reason: "v2_bad_signature" };
  if (typeof v2.expiresAt !== "string" || !(Date.parse(v2.expiresAt) > at)) return { ok: false, reason: "v2_expired" };
  return { ok: true, publicKeyHex: pubHex.toLowerCase(), v2: v2 as CatalogProofV2 };
}
