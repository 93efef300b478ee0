/**
 * Where a received bus message is authenticated: size, JSON shape, meshSig against the key ring,
 * our extension's MAC, key id, channel binding and freshness. Stateless; replay is the guard's.
 */
import { canonicalChannel, isPiloxChannel, meshMetaProblem, piloxCoreProblem } from "../channels.ts";
import type { KeyRing } from "../keyring.ts";
import { extMac, type MeshExt } from "./ext.ts";
import { canonicalize } from "../../canon/index.ts";
import { coreOf, EXT_FIELD, hexMacEquals, hmacHex, signedStringFromCanon, type JsonObject } from "./v1.ts";

export const REJECT_REASONS = [
  "oversized",
  "malformed",
  "invalid_schema",
  "unsigned",
  "unextended",
  "unknown_key",
  "forged",
  "wrong_channel",
  "stale",
  "clock_skew",
  "replayed",
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface VerifyPolicy {
  /** Largest accepted wire message, bytes. */
  maxBytes: number;
  /** A message sealed longer ago than this is stale. */
  maxAgeMs: number;
  /** Tolerated clock difference for seal times in the future. */
  skewMs: number;
  /** Accept Pilox v1 messages that carry no extension (no key id, no send time). */
  acceptV1Unextended: boolean;
}

export interface Verified {
  /** The message as it was on the wire (meshMeta, meshSig and meshExt included). */
  message: JsonObject;
  /** The channel name we deliver under (hive aliases map to pilox names). */
  channel: string;
  eventId: string;
  /** Present when the message carried our extension. */
  ext?: MeshExt;
  /** Key that verified it. */
  kid: string;
}

export type VerifyResult =
  | { ok: true; value: Verified }
  | { ok: false; reason: RejectReason; detail: string };

const fail = (reason: RejectReason, detail: string): VerifyResult => ({ ok: false, reason, detail });

/**
 * `refTimeMs` is the time freshness is judged against: now for pub/sub, the time the entry
 * entered the stream for durable channels (a stored message does not go stale while it waits).
 */
export function verifyWire(
  wireChannel: string,
  raw: string,
  ring: KeyRing,
  policy: VerifyPolicy,
  refTimeMs: number = Date.now(),
): VerifyResult {
  // Byte length is at least string length; only measure exactly when near the bound.
  if (raw.length > policy.maxBytes || (raw.length * 3 > policy.maxBytes && Buffer.byteLength(raw) > policy.maxBytes)) {
    return fail("oversized", `message exceeds ${policy.maxBytes} bytes`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail("malformed", "not JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return fail("malformed", "not a JSON object");
  }
  return verifyParsed(wireChannel, parsed as JsonObject, ring, policy, refTimeMs, raw);
}

/**
 * The canonical texts of core and meshMeta as they stand in a wire string that our sealer
 * wrote (sealToWire lays the body out canonically, then meshMeta, meshSig, meshExt). They
 * are only candidates: a MAC over them that verifies proves they are the sealer's canonical
 * text; otherwise the caller canonicalises the parsed objects as usual.
 */
function canonicalPartsFromRaw(raw: string, msg: JsonObject): { core: string; meta: string } | undefined {
  const ext = msg[EXT_FIELD];
  const tail = `,"meshSig":"${msg["meshSig"] as string}"${ext === undefined ? "" : `,"${EXT_FIELD}":${JSON.stringify(ext)}`}}`;
  if (!raw.endsWith(tail)) return undefined;
  const end = raw.length - tail.length;
  const metaKey = raw.lastIndexOf('"meshMeta":', end);
  if (metaKey < 1) return undefined;
  const meta = raw.slice(metaKey + 11, end);
  if (metaKey === 1) return raw[0] === "{" ? { core: "{}", meta } : undefined;
  if (raw[metaKey - 1] !== ",") return undefined;
  return { core: raw.slice(0, metaKey - 1) + "}", meta };
}

export function verifyParsed(
  wireChannel: string,
  msg: JsonObject,
  ring: KeyRing,
  policy: VerifyPolicy,
  refTimeMs: number = Date.now(),
  raw?: string,
): VerifyResult {
  const meshSig = msg["meshSig"];
  if (meshSig === undefined) return fail("unsigned", "no meshSig");
  if (typeof meshSig !== "string") return fail("malformed", "meshSig is not a string");
  const meta = msg["meshMeta"];
  const metaProblem = meshMetaProblem(meta);
  if (metaProblem) return fail("invalid_schema", metaProblem);
  const eventId = (meta as { eventId: string }).eventId;
  const channel = canonicalChannel(wireChannel);
  const rawExt = msg[EXT_FIELD];
  // The signed string is built from canonical core and meta: taken from the raw text when it
  // is our sealer's layout (no second canonicalisation), else computed from the objects.
  const m = new MacCheck(msg, meta, meshSig, raw === undefined ? undefined : canonicalPartsFromRaw(raw, msg));

  if (rawExt === undefined) {
    if (!policy.acceptV1Unextended) return fail("unextended", "no extension and accept_v1_unextended is off");
    for (const key of ring.all()) {
      if (m.matches(key.secret, wireChannel)) {
        const schema = schemaProblem(wireChannel, m.core());
        if (schema) return fail("invalid_schema", schema);
        return { ok: true, value: { message: msg, channel, eventId, kid: key.id } };
      }
    }
    return fail("forged", "meshSig matches no key in the ring");
  }

  const ext = parseExt(rawExt);
  if (typeof ext === "string") return fail("malformed", ext);
  const key = ring.get(ext.kid);
  if (!key) return fail("unknown_key", `key id "${ext.kid}" is not in the ring`);
  if (!hexMacEquals(ext.sig, extMac(key.secret, meshSig, ext))) return fail("forged", "extension MAC mismatch");
  if (ext.ch !== wireChannel) {
    // A genuine message moved to another channel is a different failure from a forgery.
    return m.matches(key.secret, ext.ch)
      ? fail("wrong_channel", `sealed for "${ext.ch}", received on "${wireChannel}"`)
      : fail("forged", "meshSig mismatch");
  }
  if (!m.matches(key.secret, wireChannel)) return fail("forged", "meshSig mismatch");
  if (ext.ts < refTimeMs - policy.maxAgeMs) return fail("stale", `sealed ${Math.round((refTimeMs - ext.ts) / 1000)} s ago`);
  if (ext.ts > refTimeMs + policy.skewMs) return fail("clock_skew", `sealed ${Math.round((ext.ts - refTimeMs) / 1000)} s in the future`);
  if (isPiloxChannel(wireChannel)) {
    const schema = schemaProblem(wireChannel, m.core());
    if (schema) return fail("invalid_schema", schema);
  }
  return { ok: true, value: { message: msg, channel, eventId, ext, kid: key.id } };
}

/** meshSig checks for one message, canonicalising the objects only when the raw text cannot serve. */
class MacCheck {
  #core: JsonObject | undefined;
  #computed: { core: string; meta: string } | undefined;
  constructor(
    private readonly msg: JsonObject,
    private readonly meta: unknown,
    private readonly meshSig: string,
    private readonly fromRaw: { core: string; meta: string } | undefined,
  ) {}

  core(): JsonObject {
    return (this.#core ??= coreOf(this.msg));
  }

  matches(secret: Buffer, channel: string): boolean {
    const r = this.fromRaw;
    if (r && hexMacEquals(this.meshSig, hmacHex(secret, signedStringFromCanon(channel, r.core, r.meta)))) return true;
    const c = (this.#computed ??= { core: canonicalize(this.core()), meta: canonicalize(this.meta) });
    if (r && c.core === r.core && c.meta === r.meta) return false; // the same text was just checked
    return hexMacEquals(this.meshSig, hmacHex(secret, signedStringFromCanon(channel, c.core, c.meta)));
  }
}

function schemaProblem(channel: string, core: JsonObject): string | undefined {
  return isPiloxChannel(channel) ? piloxCoreProblem(channel, core) : undefined;
}

function parseExt(x: unknown): MeshExt | string {
  if (x === null || typeof x !== "object" || Array.isArray(x)) return `${EXT_FIELD} is not an object`;
  const e = x as Record<string, unknown>;
  if (e["v"] !== 1) return `${EXT_FIELD}.v is not 1`;
  if (typeof e["kid"] !== "string" || e["kid"].length === 0 || e["kid"].length > 64) return `${EXT_FIELD}.kid is invalid`;
  if (typeof e["ts"] !== "number" || !Number.isSafeInteger(e["ts"])) return `${EXT_FIELD}.ts is invalid`;
  if (typeof e["ch"] !== "string" || e["ch"].length === 0 || e["ch"].length > 200) return `${EXT_FIELD}.ch is invalid`;
  if (e["origin"] !== undefined && (typeof e["origin"] !== "string" || e["origin"].length > 300)) return `${EXT_FIELD}.origin is invalid`;
  if (typeof e["sig"] !== "string") return `${EXT_FIELD}.sig is missing`;
  return e as unknown as MeshExt;
}
