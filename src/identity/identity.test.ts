import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalize } from "../canon/index.ts";
import { vectors } from "../../spec/vectors.ts";
import { keyFromSeedHex, publicKeyFromHex, signHex, thumbprint, verifyHex } from "./index.ts";

describe("Ed25519 identity", () => {
  it("derives the spec public keys from the spec seeds", () => {
    for (const k of Object.values(vectors.keys) as { seedHex: string; publicKeyHex: string }[]) {
      assert.equal(keyFromSeedHex(k.seedHex).publicKeyHex, k.publicKeyHex);
    }
  });
  it("reproduces the spec manifest signature (deterministic Ed25519)", () => {
    const signer = keyFromSeedHex(vectors.keys.manifestSigner.seedHex);
    assert.equal(canonicalize(vectors.manifest.body.payload), vectors.manifest.canonicalSigned);
    assert.equal(signHex(signer, vectors.manifest.canonicalSigned), vectors.manifest.body.sigHex);
    assert.ok(verifyHex(publicKeyFromHex(vectors.manifest.signerPublicKeyHex), vectors.manifest.canonicalSigned, vectors.manifest.body.sigHex.toUpperCase()));
    assert.ok(!verifyHex(publicKeyFromHex(vectors.keys.instanceA.publicKeyHex), vectors.manifest.canonicalSigned, vectors.manifest.body.sigHex));
  });
  it("kid is the RFC 7638 thumbprint", () => {
    // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
    const x = Buffer.from("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "base64url").toString("hex");
    assert.equal(thumbprint(x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  });
  it("refuses malformed keys", () => {
    assert.throws(() => keyFromSeedHex("abc"));
    assert.throws(() => publicKeyFromHex("zz".repeat(32)));
    assert.equal(verifyHex(publicKeyFromHex(vectors.keys.instanceA.publicKeyHex), "x", "00"), false);
  });
});
