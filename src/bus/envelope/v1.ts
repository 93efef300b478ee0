/** The Pilox v1 bus MAC (wire-v1 §1): HMAC-SHA256 over canon({sigVersion, channel, core, meshMeta}). */
import { createHmac, timingSafeEqual } from "node:crypto";
import { canonicalize } from "../../canon/index.ts";

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

/** The signed input, exactly as the reference builds it. */
export function signedStringV1(channel: string, core: JsonObject, meshMeta: unknown): string {
  return canonicalize({ sigVersion: SIG_VERSION_V1, channel, core, meshMeta });
}

export function macV1(secret: Buffer, channel: string, core: JsonObject, meshMeta: unknown): string {
  return createHmac("sha256", secret).update(signedStringV1(channel, core, meshMeta)).digest("hex");
}

/** The message without meshMeta, meshSig and our extension: what the MAC calls `core`. */
export function coreOf(message: JsonObject): JsonObject {
  const core: JsonObject = {};
  for (const k of Object.keys(message)) {
    if (k === "meshMeta" || k === "meshSig" || k === EXT_FIELD) continue;
    core[k] = message[k];
  }
  return core;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** Constant-time comparison of a received hex MAC against the computed one. */
export function hexMacEquals(receivedHex: unknown, expectedHex: string): boolean {
  if (typeof receivedHex !== "string" || receivedHex.length !== expectedHex.length) return false;
  if (expectedHex.length === 64 && !HEX64.test(receivedHex)) return false;
  return timingSafeEqual(Buffer.from(receivedHex.toLowerCase(), "hex"), Buffer.from(expectedHex, "hex"));
}
