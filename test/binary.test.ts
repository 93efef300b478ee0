/**
 * The single executables from `npm run build` (test/run.sh builds them first): they run with
 * no Node on PATH and an empty environment, and the ARM64 one under qemu user emulation.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { Ajv } from "ajv";
import { checkDocument } from "../src/discovery/index.ts";
import { http } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { ROOT } from "./helpers/cli.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";

const run = promisify(execFile);
const X64 = `${ROOT}/dist/pilox-mesh-linux-x64`;
const ARM64 = `${ROOT}/dist/pilox-mesh-linux-arm64`;
const s = scratch();
after(() => s.cleanup());

describe("single executable", () => {
  it("was built for both architectures, with matching SHA256SUMS", () => {
    assert.ok(existsSync(X64) && existsSync(ARM64), "run `npm run build` first");
    const sums = readFileSync(`${ROOT}/dist/SHA256SUMS`, "utf8");
    for (const f of [X64, ARM64]) {
      const h = createHash("sha256").update(readFileSync(f)).digest("hex");
      assert.ok(sums.includes(`${h}  ${f.split("/").pop()}`), `${f} in SHA256SUMS`);
    }
  });

  it("x64: runs under env -i with no node anywhere on PATH, on the embedded Node 24", async () => {
    const r = await run("env", ["-i", X64, "version"]);
    assert.match(r.stdout, /^pilox-mesh \d+\.\d+\.\d+(?:\+git\d+\.[0-9a-f]{7,})? \(commit (?:[0-9a-f]{7,}|unknown), node 24\.\d+\.\d+, linux-x64\)/);
    assert.match(r.stdout, /node 24\./);
  });

  it("x64: serves the signed discovery document with no Node on PATH; ETag and 304 behave", { timeout: 30_000 }, async () => {
    const port = await freePort();
    const cfg = s.write("bin.toml", `[instance]\norigin = "https://bin.example"\n[api]\nsocket = "${s.path("bin.sock")}"\n`);
    const p = spawn("env", ["-i", X64, "--config", cfg, "--state-dir", s.path("bin-state"), "serve", "--listen", `127.0.0.1:${port}`], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    p.stderr.on("data", (d) => (log += d));
    const exited = new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
    try {
      await waitFor(() => log.includes("msg=ready"), 15_000, "binary ready");
      const r = await http({ port }, "GET", "/.well-known/pilox-mesh.json");
      assert.equal(r.status, 200);
      const validate = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(`${ROOT}/docs/discovery.schema.json`, "utf8")));
      assert.ok(validate(structuredClone(r.json)), JSON.stringify(validate.errors));
      const key = (r.json as { federation: { localEd25519PublicKeyHex: string } }).federation.localEd25519PublicKeyHex;
      assert.equal(checkDocument(r.json, key).ok, true);
      const again = await http({ port }, "GET", "/.well-known/pilox-mesh.json", undefined, { "if-none-match": r.headers["etag"] as string });
      assert.equal(again.status, 304);
      p.kill("SIGTERM");
      assert.equal(await exited, 0);
    } finally {
      p.kill("SIGKILL");
    }
  });

  it("arm64: runs under qemu user emulation", { timeout: 60_000 }, async () => {
    const r = await run("qemu-aarch64-static", ["-L", "/usr/aarch64-linux-gnu", ARM64, "version"], { env: {} });
    assert.match(r.stdout, /node 24\.\d+\.\d+, linux-arm64\)/);
    const c = await run("qemu-aarch64-static", ["-L", "/usr/aarch64-linux-gnu", ARM64, "--state-dir", s.path("arm-state"), "check-config", "-q"], { env: {} });
    assert.match(c.stderr, /configuration OK/);
  });
});
