/**
 * 64-bit keyed fingerprints of strings, for memories that must answer "seen?" for up to
 * millions of keys (the replay memory, replay.ts) without holding the strings: as strings in a
 * Map, an event id took ~110-140 bytes of heap and was one more object for the GC to mark.
 *
 * A fingerprint is two 32-bit MurmurHash3 lanes over the string's UTF-16 units, each from its
 * own random seed: two keys collide by chance with probability about 2^-64 per pair. This is no
 * cryptographic hash, and need not be one: the keys are event ids (with their sender or scope),
 * and a sender that crafted colliding ids could only make its own messages look delivered;
 * another sender's ids are random and unknown to it.
 */
import { randomBytes } from "node:crypto";

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** MurmurHash3's finaliser: every input bit reaches every output bit. */
function fmix(h: number, n: number): number {
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface Fingerprint {
  hi: number;
  lo: number;
}

export type Seeds = readonly [number, number];

export function randomSeeds(): Seeds {
  const b = randomBytes(8);
  return [b.readUInt32LE(0), b.readUInt32LE(4)];
}

/** Both lanes in one pass over the string (a block's mixing does not depend on the seed). */
export function fingerprint(s: string, seeds: Seeds): Fingerprint {
  let h1 = seeds[0] | 0;
  let h2 = seeds[1] | 0;
  const n = s.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 ^= k;
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    let k = s.charCodeAt(i);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h1 ^= k;
    h2 ^= k;
  }
  return { hi: fmix(h1, n), lo: fmix(h2, n) };
}

const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** The 16 lower-case hex digits of a fingerprint. */
export function fingerprintHex(f: Fingerprint): string {
  return (
    BYTE_HEX[f.hi >>> 24]! + BYTE_HEX[(f.hi >>> 16) & 255]! + BYTE_HEX[(f.hi >>> 8) & 255]! + BYTE_HEX[f.hi & 255]! +
    BYTE_HEX[f.lo >>> 24]! + BYTE_HEX[(f.lo >>> 16) & 255]! + BYTE_HEX[(f.lo >>> 8) & 255]! + BYTE_HEX[f.lo & 255]!
  );
}

/** The fingerprint of 16 hex digits (unchecked: the caller matched them). */
export function parseFingerprintHex(hex: string): Fingerprint {
  return { hi: parseInt(hex.slice(0, 8), 16) >>> 0, lo: parseInt(hex.slice(8, 16), 16) >>> 0 };
}
