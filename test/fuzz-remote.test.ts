/**
 * Every remote body we read, from a hostile server: a peer registry's change feed, a signed
 * manifest, a registry record and a mesh descriptor during resolution, a discovery document
 * (`discover`). Each reader gets the adversarial corpus, an endless body (size) and a body
 * nested far past any bound (depth): it answers with a refusal or an error naming what was
 * wrong, in bounded time, and never crashes, hangs or reads past its bound.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { loadConfig } from "../src/config/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { Roster } from "../src/federation/roster.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { RegistrySync } from "../src/registry/index.ts";
import { resolveHandle } from "../src/resolve/index.ts";
import { startAppliance } from "./helpers/appliance.ts";
import { cli } from "./helpers/cli.ts";
import { corpus } from "./helpers/fuzz.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";

const s = scratch();
const N = 60;
const DEEP = "[".repeat(200_000) + "]".repeat(200_000);

/** What the hostile server answers: a fixed text, or a body that never ends. */
let current: { text: string } | "endless" = { text: "{}" };
let server: Server;
let base: string;
let endlessSent = 0;

before(async () => {
  server = createServer((_req, res) => {
    if (current === "endless") {
      res.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(256 * 1024, 0x5b); // "[[[[…": deep and endless at once
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) endlessSent += chunk.length;
        if (!res.destroyed) res.once("drain", pump);
      };
      pump();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(current.text);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
  s.cleanup();
});

/** The corpus, then the size case, then the depth case, through `read`; each must settle in time. */
async function battery(name: string, seed: number, read: () => Promise<void>, maxBytes: number): Promise<void> {
  const cases: (typeof current)[] = [...corpus(seed, N, []).map((text) => ({ text })), "endless", { text: DEEP }];
  for (const c of cases) {
    current = c;
    endlessSent = 0;
    const t0 = Date.now();
    await Promise.race([read(), new Promise((_, no) => setTimeout(() => no(new Error(`${name}: no answer within 20 s`)), 20_000))]);
    if (c === "endless") {
      assert.ok(endlessSent < maxBytes + 32 * 1024 * 1024, `${name}: read ${endlessSent} bytes of an endless body (bound ${maxBytes})`);
      assert.ok(Date.now() - t0 < 15_000, `${name}: the endless body took ${Date.now() - t0} ms`);
    }
  }
  const mem = process.memoryUsage().heapUsed;
  assert.ok(mem < 512 * 1024 * 1024, `${name}: heap ${mem}`);
}

describe("fuzz: remote bodies", { timeout: 300_000 }, () => {
  let reg: Appliance;
  before(async () => {
    const port = await freePort();
    createKeyFile(s.path("reg.key"));
    s.write("reg.toml", `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${s.path("reg.key")}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path("reg.sock")}"\n[registry]\nenabled = true\nsync_interval_seconds = 3600\n`);
    reg = await startAppliance(s.path("reg.toml"), s.path("reg-state"));
  });
  after(() => reg.stop(200));

  it("a peer registry's change feed: every page refused with a reason, the endless body stopped at 64 MiB", async () => {
    let i = 0;
    await battery(
      "registry sync",
      21,
      async () => {
        // A fresh peer each time: a failing peer is backed off, and each case must be read.
        const peer = { url: `${base}/case-${i++}`, catalogPublicKeys: ["ab".repeat(32)], prefixes: [], protocol: "auto" as const };
        const sync = new RegistrySync(reg.registry!.service, () => [peer], () => 3_600_000, s.path(`sync-${i}.json`), silentLogger);
        await sync.runOnce();
        const st = sync.status()[peer.url]!;
        assert.ok(st.lastError !== null || st.merged === 0, JSON.stringify(st));
        assert.equal(st.merged, 0);
      },
      64 * 1024 * 1024,
    );
  });

  it("a signed manifest: every body refused, the last good roster kept, the endless body stopped at its bound", async () => {
    s.write("roster.toml", `[federation.manifest]\nurl = "${base}/manifest.json"\nsigner_public_keys = ["${"cd".repeat(32)}"]\n`);
    const config = loadConfig({ path: s.path("roster.toml"), stateDir: s.path("roster-state") }).config;
    const roster = new Roster(config);
    await battery(
      "manifest",
      22,
      async () => {
        assert.equal(await roster.refresh(), false);
        assert.equal(roster.peers().length, 0);
      },
      1024 * 1024,
    );
  });

  it("resolution: a registry's record and an unsigned answer are refused with a reason; nothing hangs", async () => {
    await battery(
      "resolve",
      23,
      async () => {
        const r = await resolveHandle("urn:pilox:agent:fuzz", { registries: [base], allowPrivate: true, timeoutMs: 5_000 });
        assert.equal(r.ok, false);
      },
      256 * 1024,
    );
  });

  it("discover: the size and depth cases and a sample of the corpus exit non-zero with a message, never a crash", async () => {
    for (const c of [...corpus(24, 8, []).map((text) => ({ text })), "endless" as const, { text: DEEP }]) {
      current = c;
      const r = await cli(["discover", `${base}/.well-known/pilox-mesh.json`], { timeoutMs: 30_000 });
      assert.ok(r.code !== 0 && r.code !== null, `${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /^pilox-mesh discover: /m);
      assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace");
    }
  });
});
