/** token and manifest commands, against the spec vectors (the acceptance checks call these). */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { cli } from "./helpers/cli.ts";
import { scratch } from "./helpers/tmp.ts";
import { vectors } from "./helpers/vectors.ts";

const s = scratch();
after(() => s.cleanup());
const keyA = s.write("a.key", vectors.keys.instanceA.seedHex + "\n");
const keySigner = s.write("signer.key", vectors.keys.manifestSigner.seedHex + "\n");
const peerA = `https://mesh-a.example=${vectors.keys.instanceA.publicKeyHex}`;

describe("token", () => {
  it("verify accepts the spec token at its time and prints the claims", async () => {
    const r = await cli(["token", "verify", "--aud", "https://mesh-b.example", "--peer", peerA, "--at", String(vectors.jwt.verifyAt)], { stdin: vectors.jwt.token });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), vectors.jwt.claims);
  });
  it("verify says why it refuses", async () => {
    const cases: [string[], string, string][] = [
      [["--at", String(vectors.jwt.verifyAt + 3600)], vectors.jwt.token, "expired"],
      [["--at", String(vectors.jwt.verifyAt), "--max-lifetime", "60"], vectors.jwt.token, "lifetime_too_long"],
      [["--at", String(vectors.jwt.verifyAt)], vectors.jwt.token.slice(0, -4) + "AAAA", "bad_signature"],
    ];
    for (const [extra, tok, want] of cases) {
      const r = await cli(["token", "verify", "--aud", "https://mesh-b.example", "--peer", peerA, ...extra], { stdin: tok });
      assert.equal(r.code, 1);
      assert.equal(r.stdout.trim(), want);
    }
    const other = await cli(["token", "verify", "--aud", "https://mesh-c.example", "--peer", peerA, "--at", String(vectors.jwt.verifyAt)], { stdin: vectors.jwt.token });
    assert.equal(other.stdout.trim(), "wrong_audience");
  });
  it("mint → verify round trip with kid; usage errors exit 2", async () => {
    const m = await cli(["token", "mint", "--key-file", keyA, "--iss", "https://mesh-a.example/", "--aud", "https://mesh-b.example", "--ttl", "30"]);
    assert.equal(m.code, 0, m.stderr);
    const v = await cli(["token", "verify", "--aud", "https://mesh-b.example", "--peer", peerA], { stdin: m.stdout });
    assert.equal(v.code, 0, v.stdout);
    assert.equal(JSON.parse(v.stdout).exp - JSON.parse(v.stdout).iat, 30);
    assert.equal((await cli(["token", "mint", "--key-file", keyA, "--iss", "https://a/x", "--aud", "https://b"])).code, 2);
    assert.equal((await cli(["token", "mint", "--key-file", keyA, "--iss", "https://a", "--aud", "https://b", "--ttl", "301"])).code, 2);
    assert.equal((await cli(["token", "verify", "--aud", "https://b"], { stdin: "x" })).code, 2);
  });
});

describe("manifest", () => {
  it("verify prints the spec manifest's peers", async () => {
    const r = await cli(["manifest", "verify", "--public-key", vectors.manifest.signerPublicKeyHex], { stdin: JSON.stringify(vectors.manifest.body) });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), vectors.manifest.body.payload.peers);
  });
  it("sign reproduces the spec body; with --seq adds the extension; rollback refused", async () => {
    const plain = await cli(["manifest", "sign", "--key-file", keySigner], { stdin: JSON.stringify(vectors.manifest.body.payload) });
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(JSON.parse(plain.stdout), vectors.manifest.body);
    const v5 = await cli(["manifest", "sign", "--key-file", keySigner, "--seq", "5", "--expires-in", "3600"], { stdin: JSON.stringify(vectors.manifest.body.payload) });
    assert.equal(JSON.parse(v5.stdout).manifestExt.seq, 5);
    const ok = await cli(["manifest", "verify", "--public-key", vectors.manifest.signerPublicKeyHex, "--min-seq", "5"], { stdin: v5.stdout });
    assert.equal(ok.code, 0);
    const rb = await cli(["manifest", "verify", "--public-key", vectors.manifest.signerPublicKeyHex, "--min-seq", "6"], { stdin: v5.stdout });
    assert.equal(rb.code, 1);
    assert.equal(rb.stdout.trim(), "rollback");
    const wrong = await cli(["manifest", "verify", "--public-key", vectors.keys.instanceA.publicKeyHex], { stdin: v5.stdout });
    assert.equal(wrong.stdout.trim(), "bad_signature");
  });
});
