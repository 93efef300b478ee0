/** registry sign / verify / verify-catalog against the spec vectors (the acceptance checks call these). */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { cli } from "./helpers/cli.ts";
import { scratch } from "./helpers/tmp.ts";
import { vectors } from "./helpers/vectors.ts";

const s = scratch();
after(() => s.cleanup());
const regKey = s.write("registrar.key", vectors.keys.registrar.seedHex + "\n");
const otherKey = s.write("other.key", vectors.keys.instanceA.seedHex + "\n");
const rec = vectors.registryRecord.record;
const { proof: _p, ...unsigned } = rec;
const verify = async (r: unknown, ...args: string[]) => {
  const out = await cli(["registry", "verify", ...args], { stdin: JSON.stringify(r) });
  return out.stdout.trim();
};

describe("registry sign", () => {
  it("signs the spec record byte for byte (proof v1), and adds proof v2", async () => {
    const r = await cli(["registry", "sign", "--key-file", regKey, "--kid", "k1", "--signer", "https://registrar.example"], { stdin: JSON.stringify(unsigned) });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const { v2, ...v1 } = out.proof;
    assert.equal(JSON.stringify({ ...out, proof: v1 }), JSON.stringify(rec));
    assert.equal(v2.type, "pilox-registry-record-ed25519-v2");
    assert.equal(v2.seq, Math.floor(Date.parse(rec.updatedAt) / 1000));
    assert.equal(await verify(out), "valid");
    const seq = JSON.parse((await cli(["registry", "sign", "--key-file", regKey, "--kid", "k1", "--seq", "7"], { stdin: JSON.stringify(unsigned) })).stdout);
    assert.equal(seq.proof.v2.seq, 7);
  });

  it("adds the signing key to publicKeys when absent; refuses a kid listed with another key", async () => {
    const { publicKeys: _k, ...bare } = unsigned;
    const r = JSON.parse((await cli(["registry", "sign", "--key-file", otherKey, "--kid", "a1"], { stdin: JSON.stringify(bare) })).stdout);
    assert.deepEqual(r.publicKeys.ed25519, [{ kid: "a1", publicKeyHex: vectors.keys.instanceA.publicKeyHex }]);
    assert.equal(await verify(r, "--public-key", vectors.keys.instanceA.publicKeyHex), "valid");
    const clash = await cli(["registry", "sign", "--key-file", otherKey, "--kid", "k1"], { stdin: JSON.stringify(unsigned) });
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /kid k1 with another key/);
  });
});

describe("registry verify", () => {
  it("accepts the spec record, pinned or not; the hive schema name too", async () => {
    assert.equal(await verify(rec), "valid");
    assert.equal(await verify(rec, "--require-proof", "--public-key", vectors.keys.registrar.publicKeyHex), "valid");
    assert.equal(await verify(rec, "--public-key", vectors.keys.instanceA.publicKeyHex), "pubkey_mismatch");
  });

  it("every v1 reason of the reference, in its order", async () => {
    const p = rec.proof;
    const cases: [unknown, string][] = [
      [{ ...rec, proof: { ...p, sigHex: "zz" } }, "invalid_sig_hex"],
      [{ ...rec, proof: { ...p, type: "ed25519-signature" } }, "unsupported_proof_type"],
      [{ ...rec, proof: { ...p, signingKid: " " } }, "missing_signing_kid"],
      [{ ...rec, publicKeys: {} }, "missing_ed25519_public_keys"],
      [{ ...rec, proof: { ...p, signingKid: "k9" } }, "signing_kid_not_in_public_keys"],
      [{ ...rec, handle: "urn:pilox:agent:example:spec-0002" }, "bad_signature"],
      [{ ...rec, updatedAt: "2026-02-02T10:00:01Z" }, "bad_signature"],
      [{ ...rec, agentCardUrl: "https://evil.example/card.json" }, "bad_signature"],
      [{ ...rec, schema: "hive-registry-record-v1" }, "bad_signature"],
    ];
    for (const [r, reason] of cases) assert.equal(await verify(r), reason, reason);
    // Unsigned: accepted as the reference does, refused with --require-proof.
    assert.equal(await verify(unsigned), "valid");
    // An empty sigHex is "unsigned" to the reference's verifier, but its schema refuses it
    // (sigHex: 128 hex), so a stock registry answers invalid_record: so do we.
    assert.equal(await verify({ ...unsigned, proof: { sigHex: "" } }), "invalid_record: /proof/sigHex: expected 128 hex characters");
    assert.equal(await verify(unsigned, "--require-proof"), "missing_proof");
  });

  it("v2 covers the whole record: tampering any field is caught, also where v1 is blind", async () => {
    const signed = JSON.parse((await cli(["registry", "sign", "--key-file", regKey, "--kid", "k1"], { stdin: JSON.stringify(unsigned) })).stdout);
    const tampered: [string, unknown][] = [
      ["meshDescriptorUrl", "https://evil.example/.well-known/pilox-mesh.json"],
      ["capabilities", ["a2a-jsonrpc", "admin"]],
      ["ttlSecondsRecommended", 1],
      ["validUntil", "2099-01-01T00:00:00Z"],
      ["publicKeys", { ed25519: [...signed.publicKeys.ed25519, { kid: "k2", publicKeyHex: vectors.keys.instanceA.publicKeyHex }] }],
    ];
    for (const [field, value] of tampered) assert.equal(await verify({ ...signed, [field]: value }), "v2_bad_signature", field);
    assert.equal(await verify({ ...signed, proof: { ...signed.proof, v2: { ...signed.proof.v2, seq: 99 } } }), "v2_bad_signature");
    assert.equal(await verify({ ...signed, proof: { ...signed.proof, v2: { ...signed.proof.v2, kid: "nope" } } }), "v2_kid_not_in_public_keys");
  });

  it("refuses what the schema refuses, naming the field", async () => {
    assert.match(await verify({ ...unsigned, extra: 1 }), /^invalid_record: \/extra/);
    assert.match(await verify({ ...unsigned, handle: "urn:x:\u0007bell-handle" }), /^invalid_record: \/handle: a handle has no control characters/);
    assert.match(await verify({ ...unsigned, agentCardUrl: "http://example.org/card" }), /^invalid_record: \/agentCardUrl/);
    assert.equal(await verify({ ...unsigned, agentCardUrl: "http://127.0.0.1:8080/card" }), "valid");
    assert.match(await verify({ ...unsigned, schema: "other" }), /^invalid_record: \/schema/);
  });
});

describe("registry verify-catalog", () => {
  const body = vectors.registryCatalog.response;
  const vc = async (b: unknown, ...args: string[]) => (await cli(["registry", "verify-catalog", ...args], { stdin: JSON.stringify(b) })).stdout.trim();
  const t = Math.floor(Date.parse(body.catalogProof.issuedAt) / 1000);

  it("accepts the spec catalog; pins the key; bounds the age", async () => {
    assert.equal(await vc(body), "valid");
    assert.equal(await vc(body, "--public-key", vectors.keys.registrar.publicKeyHex, "--at", String(t + 30), "--max-age", "60"), "valid");
    assert.equal(await vc(body, "--public-key", vectors.keys.instanceA.publicKeyHex), "pubkey_mismatch");
    assert.equal(await vc(body, "--at", String(t + 3600), "--max-age", "60"), "stale");
  });

  it("the reference's reasons", async () => {
    const p = body.catalogProof;
    const cases: [unknown, string][] = [
      [[], "bad_body"],
      [{ catalogProof: p }, "missing_handles"],
      [{ ...body, handles: ["short"] }, "bad_handle_entry"],
      [{ handles: body.handles }, "missing_catalog_proof"],
      [{ ...body, catalogProof: { ...p, type: "x" } }, "bad_proof_type"],
      [{ ...body, catalogProof: { ...p, issuedAt: "" } }, "bad_issuedAt"],
      [{ ...body, catalogProof: { ...p, sigHex: "00" } }, "bad_sig_hex"],
      [{ ...body, catalogProof: { ...p, publicKeyHex: "00" } }, "bad_pub_hex"],
      [{ ...body, handles: [...body.handles, "urn:pilox:agent:example:spec-0003"] }, "bad_signature"],
      [{ ...body, catalogProof: { ...p, issuedAt: "2026-02-02T10:00:01.000Z" } }, "bad_signature"],
    ];
    for (const [b, reason] of cases) assert.equal(await vc(b), reason, reason);
  });
});
