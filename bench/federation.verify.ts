/**
 * federation.verify: full inbound token verifications/s (decode, alg, issuer lookup, Ed25519,
 * claims, lifetime, jti replay memory) against raw crypto.verify of the same signing inputs and
 * signatures, same run.
 */
import { verify } from "node:crypto";
import { MemoryTokenReplayStore, mintToken, verifyToken, type PeerKeys } from "../src/federation/index.ts";
import { keyFromSeedHex } from "../src/identity/index.ts";
import { report } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 20_000);

export async function run(): Promise<void> {
  const a = keyFromSeedHex("cf70a866f311f1c3dd61b995e98bd7790d6b6233dd2aec462333f4374a9d56ea");
  const tokens: string[] = [];
  for (let i = 0; i < N; i++) tokens.push(await mintToken({ key: a, iss: "https://mesh-a.example", aud: "https://mesh-b.example", ttlSeconds: 60 }));
  const raw = tokens.map((t) => {
    const i = t.lastIndexOf(".");
    return { input: Buffer.from(t.slice(0, i)), sig: Buffer.from(t.slice(i + 1), "base64url") };
  });
  // warm-up both paths
  for (let i = 0; i < 500; i++) verify(null, raw[i]!.input, a.publicKey, raw[i]!.sig);
  let t0 = performance.now();
  let good = 0;
  for (const r of raw) if (verify(null, r.input, a.publicKey, r.sig)) good++;
  const base = good / ((performance.now() - t0) / 1000);

  const peers = new Map<string, PeerKeys>([["https://mesh-a.example", { origin: "https://mesh-a.example", keys: [{ kid: a.kid, publicKey: a.publicKey }] }]]);
  const replay = new MemoryTokenReplayStore(N + 1000);
  const policy = { audience: "https://mesh-b.example", peers, leewaySeconds: 30, maxLifetimeSeconds: 300, replay };
  t0 = performance.now();
  let ok = 0;
  for (const t of tokens) if ((await verifyToken(t, policy)).ok) ok++;
  const value = ok / ((performance.now() - t0) / 1000);
  if (ok !== N || good !== N) throw new Error(`verified ${ok}/${good} of ${N}`);
  report("federation.verify", "verifications/s", base, value, { tokens: N, target_ratio: 0.8 });
}
