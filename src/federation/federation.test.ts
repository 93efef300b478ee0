import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { vectors } from "../../spec/vectors.ts";
import { keyFromSeedHex, publicKeyFromHex } from "../identity/index.ts";
import { MemoryTokenReplayStore, mintToken, normalizeOrigin, signManifest, verifyManifest, verifyToken, type PeerKeys, type TokenReplayStore } from "./index.ts";

const A = keyFromSeedHex(vectors.keys.instanceA.seedHex);
const B = keyFromSeedHex(vectors.keys.instanceB.seedHex);
const signer = keyFromSeedHex(vectors.keys.manifestSigner.seedHex);
const AT = vectors.jwt.verifyAt * 1000;
const peersWith = (...keys: typeof A[]): Map<string, PeerKeys> =>
  new Map([["https://mesh-a.example", { origin: "https://mesh-a.example", keys: keys.map((k) => ({ kid: k.kid, publicKey: k.publicKey })) }]]);
const policy = (over: Partial<Parameters<typeof verifyToken>[1]> = {}) => ({
  audience: "https://mesh-b.example",
  peers: peersWith(A),
  leewaySeconds: 30,
  maxLifetimeSeconds: 300,
  now: AT,
  replay: new MemoryTokenReplayStore(),
  ...over,
});

describe("federation tokens", () => {
  it("mints the spec token byte for byte (no kid) and verifies it", async () => {
    const c = vectors.jwt.claims;
    const t = await mintToken({ key: A, iss: c.iss, aud: c.aud, ttlSeconds: c.exp - c.iat, now: c.iat * 1000, jti: c.jti, kid: false });
    assert.equal(t, vectors.jwt.token);
    const r = await verifyToken(vectors.jwt.token, policy());
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.claims, c);
  });

  it("our tokens carry kid and the claims in the Pilox order", async () => {
    const t = await mintToken({ key: A, iss: "https://mesh-a.example", aud: "https://mesh-b.example", ttlSeconds: 60 });
    const [h, c] = t.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));
    assert.deepEqual(h, { alg: "EdDSA", typ: "JWT", kid: A.kid });
    assert.deepEqual(Object.keys(c), ["iss", "sub", "jti", "iat", "exp", "aud"]);
    assert.match(c.jti, /^[0-9a-f-]{36}$/);
    assert.ok((await verifyToken(t, policy({ now: undefined }))).ok);
  });

  it("a kid we do not know (the reference ignores kid) falls back to each of the issuer's keys", async () => {
    const { sign } = await import("node:crypto");
    const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64url");
    const claims = { iss: "https://mesh-a.example", sub: "federation-peer", jti: "11111111-2222-4333-8444-555555555555", iat: AT / 1000, exp: AT / 1000 + 60, aud: "https://mesh-b.example" };
    for (const kid of ["pilox-instance-key", "", "1"]) {
      const input = `${b64({ alg: "EdDSA", typ: "JWT", kid })}.${b64({ ...claims, jti: `${claims.jti.slice(0, -1)}${kid.length}` })}`;
      const t = `${input}.${sign(null, Buffer.from(input), A.privateKey).toString("base64url")}`;
      const r = await verifyToken(t, policy({ peers: peersWith(B, A) }));
      assert.ok(r.ok, `kid ${JSON.stringify(kid)}: ${JSON.stringify(r)}`);
    }
  });

  const reason = async (t: string, over: Partial<Parameters<typeof verifyToken>[1]> = {}) => {
    const r = await verifyToken(t, policy(over));
    return r.ok ? "ok" : r.reason;
  };
  const mint = (o: Partial<Parameters<typeof mintToken>[0]> = {}) =>
    mintToken({ key: A, iss: "https://mesh-a.example", aud: "https://mesh-b.example", ttlSeconds: 60, now: AT, ...o });

  it("refuses a replayed token", async () => {
    const replay = new MemoryTokenReplayStore();
    const t = await mint();
    assert.equal(await reason(t, { replay }), "ok");
    assert.equal(await reason(t, { replay }), "replayed");
  });
  it("refuses expired, future, one-year and old tokens", async () => {
    assert.equal(await reason(await mint({ now: AT - 200_000 })), "expired");
    assert.equal(await reason(await mint({ now: AT + 120_000 })), "issued_in_future");
    assert.equal(await reason(await mint({ ttlSeconds: 365 * 86_400 })), "lifetime_too_long");
    assert.equal(await reason(await mint({ ttlSeconds: 3_000 }), { maxLifetimeSeconds: 300 }), "lifetime_too_long");
    assert.equal(await reason(await mint({ now: AT - 250_000, ttlSeconds: 300 }), { maxIssueAgeSeconds: 120 }), "issued_too_long_ago");
    // within leeway
    assert.equal(await reason(await mint({ now: AT - 80_000 })), "ok");
  });
  it("refuses another audience, an unknown issuer, a wrong or removed key", async () => {
    assert.equal(await reason(await mint({ aud: "https://mesh-c.example" })), "wrong_audience");
    assert.equal(await reason(await mint({ iss: "https://stranger.example" })), "unknown_issuer");
    assert.equal(await reason(await mint({ key: B })), "bad_signature");
    // A rotated to a new key; the old one was removed from the peer entry
    assert.equal(await reason(await mint(), { peers: peersWith(B) }), "bad_signature");
  });
  it("accepts both keys during a rotation", async () => {
    const both = peersWith(A, B);
    assert.equal(await reason(await mint({ key: A }), { peers: both }), "ok");
    assert.equal(await reason(await mint({ key: B }), { peers: both }), "ok");
  });
  it("normalises origins: trailing slash and case", async () => {
    assert.equal(normalizeOrigin("https://B.example/"), "https://b.example");
    assert.equal(normalizeOrigin("https://b.example/path"), undefined);
    assert.equal(await reason(await mint({ iss: "https://MESH-A.example/" }), { audience: "https://mesh-b.example/" }), "ok");
  });
  it("refuses alg none and HS256", async () => {
    const c = Buffer.from(JSON.stringify({ ...vectors.jwt.claims })).toString("base64url");
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${c}.`;
    assert.equal(await reason(none), "alg_not_allowed");
    const hh = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString("base64url");
    const hs = `${hh}.${c}.${createHmac("sha256", "secret").update(`${hh}.${c}`).digest("base64url")}`;
    assert.equal(await reason(hs), "alg_not_allowed");
  });
  it("refuses malformed and oversized tokens", async () => {
    for (const t of ["", "a.b", "a.b.c.d", "!!.??.**", "x".repeat(9000)]) assert.equal(await reason(t), "malformed");
  });
  it("binds the body: a swapped body is refused", async () => {
    const t = await mint({ body: '{"messages":[1]}' });
    assert.equal(await reason(t, { body: '{"messages":[1]}' }), "ok");
    assert.equal(await reason(await mint({ body: '{"messages":[1]}' }), { body: '{"messages":[2]}' }), "body_mismatch");
    assert.equal(await reason(await mint(), { requireBodyBinding: true, body: "{}" }), "body_mismatch");
  });
  it("fails closed when the replay store cannot answer", async () => {
    const broken: TokenReplayStore = { claimOnce: async () => Promise.reject(new (await import("./replay-store.ts")).ReplayStoreUnavailableError("down")) };
    assert.equal(await reason(await mint(), { replay: broken }), "store_unavailable");
    const full = new MemoryTokenReplayStore(1);
    assert.equal(await reason(await mint(), { replay: full }), "ok");
    assert.equal(await reason(await mint(), { replay: full }), "store_unavailable");
  });
});

describe("signed manifests", () => {
  const pinned = [publicKeyFromHex(vectors.manifest.signerPublicKeyHex)];

  it("verifies the spec manifest, and signs it byte for byte", () => {
    const r = verifyManifest(vectors.manifest.body, { signers: pinned });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.peers.map((p) => p.origin), ["https://mesh-b.example", "https://mesh-a.example"]);
    assert.deepEqual(signManifest(vectors.manifest.body.payload, signer), vectors.manifest.body);
  });
  it("refuses a tampered payload or another signer", () => {
    const t = structuredClone(vectors.manifest.body);
    t.payload.peers.pop();
    assert.equal((verifyManifest(t, { signers: pinned }) as { reason: string }).reason, "bad_signature");
    assert.equal((verifyManifest(vectors.manifest.body, { signers: [A.publicKey] }) as { reason: string }).reason, "bad_signature");
  });
  it("our extension: sequence and expiry; a stock verifier still sees a valid body", () => {
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const v2 = signManifest({ v: 1, peers: [{ origin: "https://mesh-a.example" }] }, signer, { seq: 2, expiresAt });
    const v3 = signManifest({ v: 1, peers: [] }, signer, { seq: 3, expiresAt });
    assert.equal(v2.sigHex, signManifest(v2.payload, signer).sigHex, "payload signature unchanged by the extension");
    const r3 = verifyManifest(v3, { signers: pinned, minSeq: 3 });
    assert.ok(r3.ok && r3.seq === 3);
    // Replaying the older roster (which still lists the removed peer) is a rollback.
    assert.equal((verifyManifest(v2, { signers: pinned, minSeq: 3 }) as { reason: string }).reason, "rollback");
    // A stripped extension cannot pass once a sequence was seen.
    const { manifestExt: _e, ...bare } = v2;
    assert.equal((verifyManifest(bare, { signers: pinned, minSeq: 3 }) as { reason: string }).reason, "unversioned");
    // Tampering with the extension
    assert.equal((verifyManifest({ ...v2, manifestExt: { ...v2.manifestExt!, seq: 99 } }, { signers: pinned }) as { reason: string }).reason, "bad_signature");
    const old = signManifest({ v: 1, peers: [] }, signer, { seq: 4, expiresAt: new Date(Date.now() - 1000).toISOString() });
    assert.equal((verifyManifest(old, { signers: pinned }) as { reason: string }).reason, "expired");
  });
  it("refuses malformed bodies with the field named", () => {
    const r = verifyManifest({ payload: { v: 1, peers: [{ origin: 5 }] }, sigHex: "0".repeat(128) }, { signers: pinned });
    assert.equal(r.ok, false);
    assert.match((r as { detail: string }).detail, /payload\.peers\.0\.origin/);
  });
});

describe("HS256 (only when enabled)", () => {
  const secret = Buffer.from("shared-federation-secret-0123456789abcdef");
  const hsToken = (claims: Record<string, unknown>, key = secret) => {
    const h = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString("base64url");
    const c = Buffer.from(JSON.stringify(claims)).toString("base64url");
    return `${h}.${c}.${createHmac("sha256", key).update(`${h}.${c}`).digest("base64url")}`;
  };
  const now = Math.floor(AT / 1000);
  const claims = { iss: "pilox-mesh-federation", sub: "federation-peer", jti: "hs-1", iat: now, exp: now + 60, aud: "https://mesh-b.example" };
  const hsPeers = new Map<string, PeerKeys>([["pilox-mesh-federation", { origin: "pilox-mesh-federation", keys: [] }]]);

  it("is refused by default", async () => {
    const r = await verifyToken(hsToken(claims), policy({ peers: hsPeers }));
    assert.equal(r.ok ? "ok" : r.reason, "alg_not_allowed");
  });
  it("is accepted with the secret when enabled, with the same claim policy", async () => {
    const replay = new MemoryTokenReplayStore();
    const ok = await verifyToken(hsToken(claims), policy({ peers: hsPeers, hs256Secret: secret, replay }));
    assert.ok(ok.ok && ok.peer === "pilox-mesh-federation");
    const again = await verifyToken(hsToken(claims), policy({ peers: hsPeers, hs256Secret: secret, replay }));
    assert.equal(again.ok ? "ok" : again.reason, "replayed");
    const wrong = await verifyToken(hsToken({ ...claims, jti: "hs-2" }, Buffer.from("another-secret-0123456789abcdef0123")), policy({ peers: hsPeers, hs256Secret: secret }));
    assert.equal(wrong.ok ? "ok" : wrong.reason, "bad_signature");
    const year = await verifyToken(hsToken({ ...claims, jti: "hs-3", exp: now + 365 * 86_400 }), policy({ peers: hsPeers, hs256Secret: secret }));
    assert.equal(year.ok ? "ok" : year.reason, "lifetime_too_long");
    const other = await verifyToken(hsToken({ ...claims, jti: "hs-4", iss: "https://mesh-a.example" }), policy({ peers: hsPeers, hs256Secret: secret }));
    assert.equal(other.ok ? "ok" : other.reason, "unknown_issuer");
  });
});

describe("stock (unversioned) manifests, behind accept_unversioned", () => {
  const stock = vectors.manifest.body;
  const base = { signers: [signer.publicKey], requireExt: true };

  it("are refused by default, accepted with the option, the issue time serving as sequence", () => {
    assert.equal((verifyManifest(stock, base) as { reason: string }).reason, "unversioned");
    const r = verifyManifest(stock, { ...base, acceptUnversioned: true });
    assert.ok(r.ok && r.unversioned && r.issuedAt === stock.payload.issuedAt && r.peers.length === 2);
    // The same manifest fetched again is no change.
    assert.ok(verifyManifest(stock, { ...base, acceptUnversioned: true, lastIssuedAt: r.issuedAt, lastSigHex: r.sigHex }).ok);
    // Older, or as old with other content: a rollback.
    const older = signManifest({ v: 1, issuedAt: "2026-01-01T00:00:00.000Z", peers: [] }, signer);
    const sameTime = signManifest({ v: 1, issuedAt: stock.payload.issuedAt, peers: [] }, signer);
    for (const m of [older, sameTime]) {
      const x = verifyManifest(m, { ...base, acceptUnversioned: true, lastIssuedAt: r.issuedAt, lastSigHex: r.sigHex });
      assert.equal(x.ok ? "ok" : x.reason, "rollback");
    }
    const noTime = signManifest({ v: 1, peers: [] }, signer);
    assert.equal((verifyManifest(noTime, { ...base, acceptUnversioned: true }) as { reason: string }).reason, "unversioned");
  });

  it("we never sign a key the reference strips before verifying", () => {
    assert.throws(() => signManifest({ v: 1, peers: [{ origin: "https://a.example", kid: "x" } as never] }, signer), /payload\.peers\[0\]\.kid: the reference strips unknown keys/);
    assert.throws(() => signManifest({ v: 1, peers: [], seq: 3 } as never, signer), /payload\.seq:/);
  });
});
