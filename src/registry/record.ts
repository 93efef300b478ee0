/**
 * Registry records (wire-v1 §5): `pilox-registry-record-v1` (the `hive-` name accepted), with
 * the reference's fields and no others at the top level, validated more strictly than the
 * reference where it is lax: no control characters in handles, https URLs (http only on
 * loopback), bounded sizes.
 */
import * as v from "valibot";
import { looseObject, strictObject } from "../schema/index.ts";

export const RECORD_SCHEMA = "pilox-registry-record-v1";
export const RECORD_SCHEMAS = [RECORD_SCHEMA, "hive-registry-record-v1"] as const;
/** The largest record any setting takes (registry.max_body_bytes at most): what the CLI reads. */
export const MAX_RECORD_BYTES = 8 * 1024 * 1024;

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
/** An absolute URI (RFC 3986: a scheme, then no spaces or controls), as the reference's `format: uri`. */
const uri = v.pipe(v.string(), v.maxLength(2048), v.regex(/^[A-Za-z][A-Za-z0-9+.-]*:[^\s\u0000-\u001f\u007f]*$/, "must be a URI"));
const str = (min: number, max: number) => v.pipe(v.string(), v.minLength(min), v.maxLength(max));
const list = <T extends v.GenericSchema>(item: T, max: number) => v.pipe(v.array(item), v.maxLength(max));
const nonNegative = v.pipe(v.number(), v.finite(), v.minValue(0, "must be >= 0"));
const KEY = strictObject({ kid: str(1, 128), publicKeyHex: v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex characters")) });

const BUYER_INPUT = strictObject({
  id: str(1, 128),
  label: str(1, 255),
  key: v.optional(v.pipe(v.string(), v.maxLength(128), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must match ^[A-Za-z_][A-Za-z0-9_]*$"))),
  kind: v.picklist(["env", "secret", "url", "text", "choice"]),
  description: v.optional(str(0, 4096)),
  required: v.optional(v.boolean()),
  example: v.optional(str(0, 2048)),
  options: v.optional(list(strictObject({ value: str(0, 512), label: v.optional(str(0, 512)) }), 32)),
});

/**
 * The reference's record (wire-v1 §9, the same for `pilox-` and `hive-registry-record-v1`):
 * every key and every value constraint its JSON schema has, so a record we accept is one every
 * stock registry accepts too. Stricter where it is lax: https URLs, no control characters.
 */
const RecordSchema = strictObject({
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
  ttlSecondsRecommended: v.optional(v.pipe(v.number(), v.integer(), v.minValue(60, "must be >= 60"), v.maxValue(8_640_000, "must be <= 8640000"))),
  meshDescriptorUrl: v.optional(url),
  controllerDid: v.optional(v.pipe(str(10, 2048), v.regex(/^did:[a-z0-9]+:.+/, "must match ^did:[a-z0-9]+:.+"))),
  didDocumentUrl: v.optional(url),
  capabilities: v.optional(list(v.pipe(v.string(), v.maxLength(256), v.regex(/^[a-z0-9][a-z0-9._-]*$/, "must match ^[a-z0-9][a-z0-9._-]*$")), 64)),
  documentationUrl: v.optional(url),
  sourceUrl: v.optional(url),
  version: v.optional(str(1, 128)),
  publishedAt: v.optional(time),
  inputModalities: v.optional(list(str(1, 64), 32)),
  outputModalities: v.optional(list(str(1, 64), 32)),
  pricing: v.optional(
    strictObject({
      currency: v.optional(str(0, 16)),
      label: v.optional(str(0, 512)),
      inputTokensPerMillion: v.optional(nonNegative),
      outputTokensPerMillion: v.optional(nonNegative),
      notes: v.optional(str(0, 4000)),
    }),
  ),
  buyerInputs: v.optional(list(BUYER_INPUT, 64)),
  publishAttestation: v.optional(
    strictObject({
      confirmedAt: time,
      confirmedBuyerConfiguration: v.literal(true),
      toolingVersion: v.optional(str(0, 64)),
      hmacSha256Hex: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex characters"))),
    }),
  ),
  publicKeys: v.optional(strictObject({ ed25519: v.optional(list(KEY, 16)) })),
  // Extra keys inside proof are allowed (the reference's own rule): ours live there.
  proof: v.optional(
    looseObject({
      type: v.optional(v.string()),
      signer: v.optional(uri),
      signingKid: v.optional(str(1, 128)),
      sigHex: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{128}$/, "expected 128 hex characters"))),
    }),
  ),
});

export type RecordCheck = { ok: true; record: RegistryRecord } | { ok: false; instancePath: string; message: string };

/** Validates a parsed record; the error names the field the way the reference's API does. */
export function checkRecord(x: unknown): RecordCheck {
  const r = v.safeParse(RecordSchema, x);
  // The record itself, never the schema's rebuilt copy (checked, not transformed).
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
