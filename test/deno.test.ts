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
