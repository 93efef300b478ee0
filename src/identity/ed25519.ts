/**
 * Ed25519 through node:crypto (the native implementation: ~10x @noble/ed25519 here). Keys are
 * Pilox-compatible: a private key is the 32-byte seed as 64 hex, a public key 32 raw bytes.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";

const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const HEX32 = /^[0-9a-fA-F]{64}$/;

export interface Ed25519Key {
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicKeyHex: string;
  /** RFC 7638 JWK thumbprint of the public key (base64url SHA-256). */
  kid: string;
}

export function keyFromSeedHex(seedHex: string): Ed25519Key {
  if (!HEX32.test(seedHex)) throw new Error("an Ed25519 seed is 64 hex characters");
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(seedHex, "hex")]), format: "der", type: "pkcs8" });
  const publicKey = createPublicKey(privateKey);
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length);
  const publicKeyHex = Buffer.from(raw).toString("hex");
  return { privateKey, publicKey, publicKeyHex, kid: thumbprint(publicKeyHex) };
}

/**
 * Parsed public keys by their hex: a registry sync verifies thousands of records made by a few
 * keys, and parsing the key again for each was a tenth of its CPU. Bounded (the oldest entry
 * goes first); public keys only, nothing secret is kept.
 */
const parsed = new Map<string, KeyObject>();
const MAX_PARSED = 1024;

export function publicKeyFromHex(hex: string): KeyObject {
  const known = parsed.get(hex);
  if (known) return known;
  if (!HEX32.test(hex)) throw new Error("an Ed25519 public key is 64 hex characters");
  const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(hex, "hex")]), format: "der", type: "spki" });
  if (parsed.size >= MAX_PARSED) parsed.delete(parsed.keys().next().value!);
  parsed.set(hex, key);
  return key;
}

/** kid = base64url(SHA-256('{"crv":"Ed25519","kty":"OKP","x":"<b64url key>"}')), RFC 7638. */
export function thumbprint(publicKeyHex: string): string {
  const x = Buffer.from(publicKeyHex, "hex").toString("base64url");
  return createHash("sha256").update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest("base64url");
}

export function signHex(key: Ed25519Key, data: string | Buffer): string {
  return sign(null, typeof data === "string" ? Buffer.from(data) : data, key.privateKey).toString("hex");
}

/** Accepts upper- or lower-case hex signatures (wire-v1 §0). */
export function verifyHex(publicKey: KeyObject, data: string | Buffer, sigHex: string): boolean {
  if (!/^[0-9a-fA-F]{128}$/.test(sigHex)) return false;
  return verify(null, typeof data === "string" ? Buffer.from(data) : data, publicKey, Buffer.from(sigHex, "hex"));
}
