/** The Pilox v1 bus MAC (wire-v1 §1): HMAC-SHA256 over canon({sigVersion, channel, core, meshMeta}). */
import { canonicalize, quoted } from "../../canon/index.ts";
import { hmacHex } from "./hmac.ts";

export { hmacHex };

export const SIG_VERSION_V1 = "pilox-mesh-hmac-v1";
/** Our extension lives in this one top-level sibling field (see docs/wire-formats.md). */
export const EXT_FIELD = "meshExt";

export type JsonObject = Record<string, unknown>;

export interface MeshMeta {
  v: 1;
  producer: string;
  eventId: string;
  correlationId?: string;
  [k: string]: unknown;
}

/** The signed input, exactly as the reference builds it: canon({sigVersion, channel, core, meshMeta}). */
export function signedStringV1(channel: string, core: JsonObject, meshMeta: unknown): string {
  return signedStringFromCanon(channel, canonicalize(core), meshMeta === undefined ? undefined : canonicalize(meshMeta));
}

/** The same string from already canonical parts (the keys below are in canonical order). */
export function signedStringFromCanon(channel: string, canonCore: string, canonMeta: string | undefined): string {
  const head = `{"channel":${quoted(channel)},"core":`;
  const tail = `"sigVersion":"${SIG_VERSION_V1}"}`;
  return canonMeta === undefined ? `${head}${canonCore},${tail}` : `${head}${canonCore},"meshMeta":${canonMeta},${tail}`;
}

export function macV1(secret: Buffer, channel: string, core: JsonObject, meshMeta: unknown): string {
  return hmacHex(secret, signedStringV1(channel, core, meshMeta));
}

/** The message without meshMeta, meshSig and our extension: what the MAC calls `core`. */
export function coreOf(message: JsonObject): JsonObject {
  const core: JsonObject = {};
  for (const k of Object.keys(message)) {
    if (k === "meshMeta" || k === "meshSig" || k === EXT_FIELD) continue;
    // An own "__proto__" key (JSON.parse makes one) must stay a key: assigning it would set
    // the prototype instead, and the field would vanish from what is signed and sent.
    if (k === "__proto__") Object.defineProperty(core, k, { value: message[k], enumerable: true, writable: true, configurable: true });
    else core[k] = message[k];
  }
  return core;
}

/**
 * Constant-time comparison of a received hex MAC (either case) against the computed lower-case
 * one: every character is looked at whatever the differences, with no allocation.
 */
export function hexMacEquals(receivedHex: unknown, expectedHex: string): boolean {
  if (typeof receivedHex !== "string" || receivedHex.length !== expectedHex.length) return false;
  let diff = 0;
  for (let i = 0; i < expectedHex.length; i++) {
    let c = receivedHex.charCodeAt(i);
    // Fold A-F onto a-f. The branch depends on the received text only, never on the secret MAC.
    if (c >= 0x41 && c <= 0x46) c |= 0x20;
    diff |= c ^ expectedHex.charCodeAt(i);
  }
  return diff === 0;
}

/** Constant-time equality of a received MAC string and the computed one, exact (no case folding). */
export function macTextEquals(received: string, expected: string): boolean {
  const n = expected.length;
  if (received.length !== n) return false;
  let diff = 0;
  for (let i = 0; i < n; i++) diff |= received.charCodeAt(i) ^ expected.charCodeAt(i);
  return diff === 0;
}
