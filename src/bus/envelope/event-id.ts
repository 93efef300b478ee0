/**
 * Random (version 4) UUIDs for meshMeta.eventId. crypto.randomUUID builds each one from
 * twenty small strings (~580 bytes of garbage per call in the bus.pubsub profile); this writes
 * the 36 ASCII characters into a buffer and makes one string of them. The randomness is the
 * same: 16 fresh bytes from a CSPRNG pool per id, never reused.
 */
import { randomFillSync } from "node:crypto";

const POOL_BYTES = 16 * 256;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;
const text = Buffer.allocUnsafe(36);
const HEX = Buffer.from("0123456789abcdef", "latin1");

export function randomEventId(): string {
  if (used + 16 > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  let j = 0;
  for (let i = 0; i < 16; i++) {
    let b = pool[used + i]!;
    if (i === 6) b = (b & 0x0f) | 0x40; // version 4
    else if (i === 8) b = (b & 0x3f) | 0x80; // RFC 4122 variant
    if (i === 4 || i === 6 || i === 8 || i === 10) text[j++] = 0x2d;
    text[j++] = HEX[b >> 4]!;
    text[j++] = HEX[b & 15]!;
  }
  used += 16;
  return text.toString("latin1", 0, 36);
}
