/**
 * Where a received bus message is authenticated: size, JSON shape, then meshSig against the key
 * ring (v1 messages) or our extension's MAC, key id, channel binding and freshness. Stateless:
 * replay is the guard's.
 */
import { canonicalChannel, isPiloxChannel, meshMetaProblem, piloxCoreProblem } from "../channels.ts";
import type { KeyRing } from "../keyring.ts";
import { canonicalExt, extMac, type MeshExt } from "./ext.ts";
import { isTraceparent, isTracestate } from "../trace.ts";
import { canonicalize } from "../../canon/index.ts";
import { JsonDepthError, jsonDepthExceeds, MAX_JSON_DEPTH } from "../../json/index.ts";
import { coreOf, EXT_FIELD, hexMacEquals, hmacHex, macTextEquals, signedStringFromCanon, type JsonObject } from "./v1.ts";

export const REJECT_REASONS = [
  "oversized",
  "malformed",
  "too_deep",
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
  // Before anything walks it: canonical JSON and the schema checks recurse.
  if (jsonDepthExceeds(raw, MAX_JSON_DEPTH)) return fail("too_deep", `nested deeper than ${MAX_JSON_DEPTH} levels`);
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

const SIG_KEY = ',"meshSig":"';
const EXT_KEY = `,"${EXT_FIELD}":`;
const META_KEY = '"meshMeta":';

/** raw[at, at + len) === text[0, len), without making a substring. */
function regionEquals(raw: string, at: number, text: string, len: number): boolean {
  if (at < 0 || at + len > raw.length) return false;
  for (let i = 0; i < len; i++) if (raw.charCodeAt(at + i) !== text.charCodeAt(i)) return false;
  return true;
}

interface Texts {
  core: string;
  meta: string;
  /** Canonical extension text without sig ("" for a v1 message). */
  ext: string;
}

/**
 * The canonical texts of core, meshMeta and meshExt as they stand in a wire string that our
 * sealer wrote (sealToWire: the body in canonical order, then meshMeta, meshSig and meshExt).
 * They are only candidates: a MAC over them that verifies proves they are the sealer's
 * canonical text; otherwise the caller canonicalises the parsed objects. The end of the text
 * must be exactly the serialisation of the parsed meshSig and meshExt, so that nothing the MAC
 * does not cover can hide there (a key repeated after them would override a signed value).
 * When the MAC then verifies, every piece of `raw` is accounted for: it is the sealer's wire
 * text byte for byte, and the parsed object is what was signed. (Exported for its tests.)
 */
export function textsFromRaw(raw: string, meshSig: string, ext: MeshExt | undefined): Texts | undefined {
  let end = raw.length - 1;
  if (raw.charCodeAt(end) !== 0x7d || meshSig.length !== 64) return undefined;
  let extText = "";
  if (ext !== undefined) {
    if (ext.sig.length !== 64) return undefined;
    // Canonical from the parsed values (the MAC input needs it anyway); the raw text must end
    // with exactly it, sig appended: `,"meshExt":{…canonical fields…,"sig":"<64>"}}`.
    extText = canonicalExt(ext);
    const sigAt = end - 74; // `,"sig":"` + 64 + `"}` before the closing brace
    const bodyAt = sigAt - (extText.length - 1);
    if (
      raw.charCodeAt(end - 1) !== 0x7d ||
      raw.charCodeAt(end - 2) !== 0x22 ||
      !raw.startsWith(',"sig":"', sigAt) ||
      !raw.startsWith(ext.sig, sigAt + 8) ||
      !regionEquals(raw, bodyAt, extText, extText.length - 1) ||
      !raw.startsWith(EXT_KEY, bodyAt - EXT_KEY.length)
    ) {
      return undefined;
    }
    end = bodyAt - EXT_KEY.length;
  }
  const sigKeyAt = end - 65 - SIG_KEY.length;
  if (raw.charCodeAt(end - 1) !== 0x22 || !raw.startsWith(SIG_KEY, sigKeyAt) || !raw.startsWith(meshSig, sigKeyAt + SIG_KEY.length)) {
    return undefined;
  }
  const metaAt = raw.lastIndexOf(META_KEY, sigKeyAt);
  if (metaAt < 1) return undefined;
  const meta = raw.slice(metaAt + META_KEY.length, sigKeyAt);
  if (metaAt === 1) return raw.charCodeAt(0) === 0x7b ? { core: "{}", meta, ext: extText } : undefined;
  if (raw.charCodeAt(metaAt - 1) !== 0x2c) return undefined;
  return { core: raw.slice(0, metaAt - 1) + "}", meta, ext: extText };
}

export function verifyParsed(
  wireChannel: string,
  msg: JsonObject,
  ring: KeyRing,
  policy: VerifyPolicy,
  refTimeMs: number = Date.now(),
  raw?: string,
): VerifyResult {
  try {
    return verifyObject(wireChannel, msg, ring, policy, refTimeMs, raw);
  } catch (err) {
    // A parsed object that did not come through verifyWire's depth check.
    if (err instanceof JsonDepthError) return fail("too_deep", err.message);
    throw err;
  }
}

function verifyObject(
  wireChannel: string,
  msg: JsonObject,
  ring: KeyRing,
  policy: VerifyPolicy,
  refTimeMs: number,
  raw: string | undefined,
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
  const ext = rawExt === undefined ? undefined : parseExt(rawExt);
  if (typeof ext === "string") return fail("malformed", ext);
  if (ext === undefined && !policy.acceptV1Unextended) return fail("unextended", "no extension and accept_v1_unextended is off");
  // The signed string is built from canonical core and meta: taken from the raw text when it
  // is our sealer's layout (no second canonicalisation), else computed from the objects.
  const m = new MacCheck(msg, meta, ext, raw === undefined ? undefined : textsFromRaw(raw, meshSig, ext));

  if (ext === undefined) {
    for (const key of ring.all()) {
      if (m.matches(meshSig, key.secret, wireChannel)) {
        const schema = schemaProblem(wireChannel, m.core());
        if (schema) return fail("invalid_schema", schema);
        return { ok: true, value: { message: msg, channel, eventId, kid: key.id } };
      }
    }
    return fail("forged", "meshSig matches no key in the ring");
  }

  const key = ring.get(ext.kid);
  if (!key) return fail("unknown_key", `key id "${ext.kid}" is not in the ring`);
  // One MAC covers the body, meshMeta, the channel it was sealed for, meshSig and the extension.
  if (!m.matches(ext.sig, key.secret, ext.ch, meshSig)) {
    return fail("forged", "extension MAC mismatch");
  }
  // Genuine, but moved to another channel: a different failure from a forgery.
  if (ext.ch !== wireChannel) return fail("wrong_channel", `sealed for "${ext.ch}", received on "${wireChannel}"`);
  if (ext.ts < refTimeMs - policy.maxAgeMs) return fail("stale", `sealed ${Math.round((refTimeMs - ext.ts) / 1000)} s ago`);
  if (ext.ts > refTimeMs + policy.skewMs) return fail("clock_skew", `sealed ${Math.round((ext.ts - refTimeMs) / 1000)} s in the future`);
  if (isPiloxChannel(wireChannel)) {
    const schema = schemaProblem(wireChannel, m.core());
    if (schema) return fail("invalid_schema", schema);
  }
  return { ok: true, value: { message: msg, channel, eventId, ext, kid: key.id } };
}

/** MAC checks for one message, canonicalising the objects only when the raw text cannot serve. */
class MacCheck {
  #core: JsonObject | undefined;
  #computed: Texts | undefined;
  constructor(
    private readonly msg: JsonObject,
    private readonly meta: unknown,
    private readonly ext: MeshExt | undefined,
    private readonly fromRaw: Texts | undefined,
  ) {}

  core(): JsonObject {
    return (this.#core ??= coreOf(this.msg));
  }

  /**
   * Does `received` equal the MAC for `channel`: meshSig's (v1), or with `meshSig` given, the
   * extension's? (No closure per call: this runs for every message.)
   */
  matches(received: string, secret: Buffer, channel: string, meshSig?: string): boolean {
    const r = this.fromRaw;
    // meshSig (v1) may arrive in upper case; our extension's sig is lower-case hex only.
    const equals = meshSig === undefined ? hexMacEquals : macTextEquals;
    if (r && equals(received, macOf(secret, channel, r, meshSig))) return true;
    const c = (this.#computed ??= {
      core: canonicalize(this.core()),
      meta: canonicalize(this.meta),
      // Always from the parsed values, so the raw path's text serves when there was one.
      ext: r ? r.ext : this.ext ? canonicalExt(this.ext) : "",
    });
    if (r && c.core === r.core && c.meta === r.meta && c.ext === r.ext) return false; // the same text was just checked
    return equals(received, macOf(secret, channel, c, meshSig));
  }
}

function macOf(secret: Buffer, channel: string, t: Texts, meshSig: string | undefined): string {
  const signed = signedStringFromCanon(channel, t.core, t.meta);
  return meshSig === undefined ? hmacHex(secret, signed) : extMac(secret, signed, meshSig, t.ext);
}

function schemaProblem(channel: string, core: JsonObject): string | undefined {
  return isPiloxChannel(channel) ? piloxCoreProblem(channel, core) : undefined;
}

const EXT_KEYS = new Set(["v", "kid", "ts", "ch", "origin", "traceparent", "tracestate", "sig"]);

function parseExt(x: unknown): MeshExt | string {
  if (x === null || typeof x !== "object" || Array.isArray(x)) return `${EXT_FIELD} is not an object`;
  const e = x as Record<string, unknown>;
  if (e["v"] !== 1) return `${EXT_FIELD}.v is not 1`;
  if (typeof e["kid"] !== "string" || e["kid"].length === 0 || e["kid"].length > 64) return `${EXT_FIELD}.kid is invalid`;
  if (typeof e["ts"] !== "number" || !Number.isSafeInteger(e["ts"])) return `${EXT_FIELD}.ts is invalid`;
  if (typeof e["ch"] !== "string" || e["ch"].length === 0 || e["ch"].length > 200) return `${EXT_FIELD}.ch is invalid`;
  if (e["origin"] !== undefined && (typeof e["origin"] !== "string" || e["origin"].length > 300)) return `${EXT_FIELD}.origin is invalid`;
  if (e["traceparent"] !== undefined && !isTraceparent(e["traceparent"])) return `${EXT_FIELD}.traceparent is invalid`;
  if (e["tracestate"] !== undefined && (e["traceparent"] === undefined || !isTracestate(e["tracestate"]))) return `${EXT_FIELD}.tracestate is invalid`;
  if (typeof e["sig"] !== "string") return `${EXT_FIELD}.sig is missing`;
  // Every field is covered by sig: an unknown one could only be unauthenticated baggage.
  for (const k in e) if (!EXT_KEYS.has(k)) return `${EXT_FIELD}.${k} is not a known field`;
  return e as unknown as MeshExt;
}
