/**
 * Seals or verifies one extended bus message with the library itself, so a test can run it
 * under Node and under Deno and cross the two: `seal CHANNEL` prints a wire message for
 * {"n":1,"text":"é"}; `verify CHANNEL` reads one from stdin and prints "ok" or the reason.
 */
import { readFileSync } from "node:fs";
import { KeyRing, sealToWire, verifyWire } from "../../src/bus/index.ts";
import { SECRET_A } from "./tmp.ts";

const ring = new KeyRing([{ id: "k1", secret: Buffer.from(SECRET_A) }]);
const policy = { maxBytes: 65_536, maxAgeMs: 300_000, skewMs: 30_000, acceptV1Unextended: false };
const [mode, channel] = process.argv.slice(2);
if (mode === "seal") {
  process.stdout.write(sealToWire(channel!, { n: 1, text: "é", nested: { b: [1, 2], a: null } }, ring.primary, { producer: "cross" }).wire);
} else {
  const r = verifyWire(channel!, readFileSync(0, "utf8"), ring, policy);
  process.stdout.write(r.ok ? "ok" : r.reason);
}
