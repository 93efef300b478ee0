/**
 * The source also runs under Deno (node: imports and web standards only): the CLI's v1
 * seal/verify against the spec vectors, check-config on the example, and our extended envelope
 * sealed by one runtime and verified by the other.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { vectors } from "./helpers/vectors.ts";
import { cli, ROOT } from "./helpers/cli.ts";
import { scratch } from "./helpers/tmp.ts";
import { startNats } from "./helpers/nats.ts";

const s = scratch();
after(() => s.cleanup());
const bus = vectors.bus;
const ENVELOPE = `${ROOT}/test/helpers/envelope-cli.ts`;

describe("under Deno", { timeout: 120_000 }, () => {
  it("runs the CLI", async () => {
    const r = await cli(["version"], { runtime: "deno" });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pilox-mesh /);
  });

  it("bus seal and bus verify reproduce the spec vector", async () => {
    const key = s.write("bus.key", bus.secret);
    const sealed = await cli(["bus", "seal", "--channel", bus.channel, "--secret-file", key], {
      runtime: "deno",
      stdin: JSON.stringify({ ...bus.core, meshMeta: bus.meshMeta }),
    });
    assert.equal(sealed.code, 0, sealed.stderr);
    assert.equal(sealed.stdout.trim(), JSON.stringify(bus.wire));
    const ok = await cli(["bus", "verify", "--channel", bus.channel, "--secret-file", key], { runtime: "deno", stdin: JSON.stringify(bus.wire) });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), "valid");
    const bad = await cli(["bus", "verify", "--channel", "pilox:agent:status", "--secret-file", key], { runtime: "deno", stdin: JSON.stringify(bus.wire) });
    assert.equal(bad.code, 1);
  });

  it("check-config accepts the example configuration", async () => {
    const r = await cli(["--config", `${ROOT}/examples/pilox-mesh.toml`, "--state-dir", s.path("st"), "check-config"], { runtime: "deno" });
    assert.equal(r.code, 0, r.stderr);
  });

  it("registry sign, verify and verify-catalog reproduce the spec vectors", async () => {
    const key = s.write("registrar.key", vectors.keys.registrar.seedHex + "\n");
    const { proof: _p, ...unsigned } = vectors.registryRecord.record;
    const signed = await cli(["registry", "sign", "--key-file", key, "--kid", "k1", "--signer", "https://registrar.example"], { runtime: "deno", stdin: JSON.stringify(unsigned) });
    assert.equal(signed.code, 0, signed.stderr);
    const { v2: _v2, ...v1 } = JSON.parse(signed.stdout).proof;
    assert.deepEqual(v1, vectors.registryRecord.record.proof);
    const ok = await cli(["registry", "verify", "--require-proof"], { runtime: "deno", stdin: signed.stdout });
    assert.equal(ok.stdout.trim(), "valid", ok.stderr);
    const cat = await cli(["registry", "verify-catalog", "--public-key", vectors.keys.registrar.publicKeyHex], { runtime: "deno", stdin: JSON.stringify(vectors.registryCatalog.response) });
    assert.equal(cat.stdout.trim(), "valid", cat.stderr);
  });

  it("the registry's SQLite store runs on Deno's node:sqlite", async () => {
    const script = s.write(
      "store.ts",
      `import { SqliteStore } from "${ROOT}/src/registry/sqlite-store.ts";\n` +
        `const st = new SqliteStore(${JSON.stringify(s.path("deno.sqlite"))});\n` +
        `const e = await st.put({ handle: "urn:deno:1", seq: 1, body: { handle: "urn:deno:1" }, deleted: false, keys: [], agentCardUrl: "https://a.example/c", expiresAt: 0, etag: "W/\\"x\\"" }, null);\n` +
        `console.log(JSON.stringify({ cursor: e === "conflict" ? 0 : e.cursor, served: (await st.served("urn:deno:1"))?.etag, conflict: await st.put({ handle: "urn:deno:1", seq: 2, body: {}, deleted: false, keys: [], agentCardUrl: "", expiresAt: 0, etag: "" }, null) }));\n` +
        `await st.close();\n`,
    );
    const r = await cli([], { runtime: "deno", script });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { cursor: 1, served: 'W/"x"', conflict: "conflict" });
  });

  it("the WAN library path: a frame sealed, sent through JetStream with the NATS v3 client, fetched and verified", async () => {
    const nats = await startNats();
    try {
      const r = await cli([nats.url], { runtime: "deno", script: `${ROOT}/test/helpers/wan-deno.ts` });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { stored: 1, ok: true, seq: 7, acked: true });
    } finally {
      await nats.stop();
    }
  });

  for (const [from, to] of [
    ["deno", "node"],
    ["node", "deno"],
  ] as const) {
    it(`an extended message sealed under ${from} verifies under ${to}, and only on its channel`, async () => {
      const sealed = await cli(["seal", "jobs"], { runtime: from, script: ENVELOPE });
      assert.equal(sealed.code, 0, sealed.stderr);
      assert.match(sealed.stdout, /"meshExt":\{"ch":"jobs"/);
      const ok = await cli(["verify", "jobs"], { runtime: to, script: ENVELOPE, stdin: sealed.stdout });
      assert.equal(ok.stdout, "ok", ok.stderr);
      const moved = await cli(["verify", "other"], { runtime: to, script: ENVELOPE, stdin: sealed.stdout });
      assert.equal(moved.stdout, "wrong_channel", moved.stderr);
    });
  }
});
