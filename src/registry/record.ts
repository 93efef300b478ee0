/**
 * Registry records (wire-v1 §5): `pilox-registry-record-v1` (the `hive-` name accepted), with
 * the reference's fields and no others at the top level, validated more strictly than the
 * reference where it is lax: no control characters in handles, https URLs (http only on
 * loopback), bounded sizes.
 */
import * as v from "valibot";

export const RECORD_SCHEMA = "pilox-registry-record-v1";
export const RECORD_SCHEMAS = [RECORD_SCHEMA, "hive-registry-record-v1"] as const;
export const MAX_RECORD_BYTES = 64 * 1024;

export type RegistryRecord = Record<string, unknown> & {
  schema: string;
  handle: string;
  updatedAt: string;
  agentCardUrl: string;
  proof?: Record<string, unknown>;
  publicKeys?: { ed25519?: { kid: string; publicKeyHex: string }[] };
  validUntil?: string;
  ttlSecondsRecommended?: number;
  meshDescriptorUrl?: string;
};

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;
const time = v.pipe(v.string(), v.regex(RFC3339, "expected an RFC 3339 time"), v.check((s) => !Number.isNaN(Date.parse(s)), "not a real time"));

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** https, or http on loopback only (a test or a same-host agent). */
export function isAcceptableUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "https:" || (u.protocol === "http:" && isLoopback(u.hostname));
  } catch {
    return false;
  }
}

const url = v.pipe(v.string(), v.maxLength(2048), v.check(isAcceptableUrl, "expected an https URL (http only on loopback)"));
const KEY = v.strictObject({ kid: v.pipe(v.string(), v.minLength(1), v.maxLength(128)), publicKeyHex: v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex characters")) });

/** The reference's record keys: required four, then its optional ones (marketplace included). */
const RecordSchema = v.strictObject({
  schema: v.picklist(RECORD_SCHEMAS),
  handle: v.pipe(
    v.string(),
    v.minLength(8),
    v.maxLength(512),
    v.check((s) => !/[\u0000-\u001f\u007f]/.test(s), "a handle has no control characters"),
  ),
  updatedAt: time,
  agentCardUrl: url,
  validUntil: v.optional(time),
  ttlSecondsRecommended: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(31_536_000))),
  meshDescriptorUrl: v.optional(url),
  controllerDid: v.optional(v.pipe(v.string(), v.maxLength(1024))),
  didDocumentUrl: v.optional(url),
  capabilities: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(256))), v.maxLength(256))),
  documentationUrl: v.optional(url),
  sourceUrl: v.optional(url),
  version: v.optional(v.pipe(v.string(), v.maxLength(128))),
  publishedAt: v.optional(time),
  inputModalities: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(128))), v.maxLength(64))),
  outputModalities: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(128))), v.maxLength(64))),
  pricing: v.optional(v.unknown()),
  buyerInputs: v.optional(v.unknown()),
  publishAttestation: v.optional(v.unknown()),
  publicKeys: v.optional(v.strictObject({ ed25519: v.optional(v.pipe(v.array(KEY), v.maxLength(16))) })),
  // Extra keys inside proof are allowed (the reference's own rule): ours live there.
  proof: v.optional(v.record(v.string(), v.unknown())),
});

export type RecordCheck = { ok: true; record: RegistryRecord } | { ok: false; instancePath: string; message: string };

/** Validates a parsed record; the error names the field the way the reference's API does. */
export function checkRecord(x: unknown): RecordCheck {
  const r = v.safeParse(RecordSchema, x);
  if (r.success) return { ok: true, record: x as RegistryRecord };
  const first = r.issues[0]!;
  const path = v.getDotPath(first);
  return { ok: false, instancePath: path ? "/" + path.replaceAll(".", "/") : "", message: first.message };
}

/** The record without its proof: what proof v2 covers. */
export function withoutProof(rec: RegistryRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(rec)) if (k !== "proof") Object.defineProperty(out, k, { value: rec[k], enumerable: true, writable: true, configurable: true });
  return out;
}
