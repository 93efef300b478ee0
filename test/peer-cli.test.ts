/**
 * `pilox-mesh peer add|remove|list` against two running appliances: each pins the other by its
 * signed discovery document, writes a drop-in, reloads the running appliance, and a message
 * then crosses the relay; a wrong pin, a changed key and an unconfirmed first contact are
 * refused; remove takes the peer away (a reload with the removal allowed).
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { Delivery } from "../src/bus/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile, thumbprint, type Ed25519Key } from "../src/identity/index.ts";
import { startAppliance } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { cli } from "./helpers/cli.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const s = scratch();
const site: Record<"a" | "b", { port: number; app?: Appliance; key?: Ed25519Key; cfg: string }> = { a: { port: 0, cfg: "" }, b: { port: 0, cfg: "" } };
const origin = (n: "a" | "b") => `http://127.0.0.1:${site[n].port}`;

before(async () => {
  for (const n of ["a", "b"] as const) {
    site[n].port = await freePort();
    site[n].key = createKeyFile(s.path(`${n}-id.key`));
    s.write(`${n}-bus.key`, n === "a" ? SECRET_A : SECRET_B);
    mkdirSync(s.path(`${n}-etc`, "conf.d"), { recursive: true });
    site[n].cfg = s.path(`${n}-etc`, "pilox-mesh.toml");
    writeFileSync(
      site[n].cfg,
      `[instance]\norigin = "${origin(n)}"\nkey_file = "${s.path(`${n}-id.key`)}"\n[http]\nlisten = "127.0.0.1:${site[n].port}"\n[api]\nsocket = "${s.path(`${n}.sock`)}"\n[[bus.keys]]\nid = "${n}1"\nsecret_file = "${s.path(`${n}-bus.key`)}"\n[federation]\nper_ip_rate = 10000\n`,
    );
    site[n].app = await startAppliance(site[n].cfg, s.path(`${n}-state`));
  }
});
after(async () => {
  for (const n of ["a", "b"] as const) await site[n].app?.stop(200);
  s.cleanup();
});

describe("pilox-mesh peer", { timeout: 60_000 }, () => {
  it("refuses a first contact nobody confirmed, and a pin that does not match", async () => {
    const none = await cli(["peer", "add", origin("b"), "--config", site.a.cfg]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, new RegExp(`key fingerprint ${thumbprint(site.b.key!.publicKeyHex)}`));
    assert.match(none.stderr, /not confirmed: check the fingerprint out of band, then give it with --pin/);
    const wrong = await cli(["peer", "add", origin("b"), `--pin=${thumbprint(site.a.key!.publicKeyHex)}`, "--config", site.a.cfg]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /does not match that key/);
    assert.equal(site.a.app!.federation.peers().size, 0, "nothing written, nothing reloaded");
  });

  it("adds each side by its pinned fingerprint: a drop-in, a reload, and a message crosses", async () => {
    const toB = await cli(["peer", "add", origin("b"), `--pin=${thumbprint(site.b.key!.publicKeyHex)}`, "--forward", "jobs", "--config", site.a.cfg]);
    assert.equal(toB.code, 0, toB.stderr);
    const file = toB.stdout.trim();
    assert.equal(file, s.path("a-etc", "conf.d", `peer-127.0.0.1-${site.b.port}.toml`));
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.match(readFileSync(file, "utf8"), new RegExp(`public_keys = \\["${site.b.key!.publicKeyHex}"\\]`));
    assert.match(toB.stderr, /the running appliance reloaded/);
    // B pins A by its public key (either form of --pin works).
    const toA = await cli(["peer", "add", origin("a"), "--pin", site.a.key!.publicKeyHex, "--accept", "jobs", "--config", site.b.cfg]);
    assert.equal(toA.code, 0, toA.stderr);
    assert.equal(site.a.app!.federation.peers().size, 1);
    assert.equal(site.b.app!.federation.peers().size, 1);
    const got: Delivery[] = [];
    const sub = await site.b.app!.bus.subscribe("jobs", (d) => void got.push(d));
    await site.a.app!.bus.publish("jobs", { task: "index", n: 1 });
    await waitFor(() => got.length === 1, 15_000, "the message at B");
    await sub.close();
    // The per-peer gauges the shipped alerts watch.
    const m = (await (await fetch(`${origin("a")}/metrics`)).text());
    assert.match(m, new RegExp(`^pilox_mesh_federation_peer_up\\{peer="${origin("b")}",transport="relay"\\} 1$`, "m"));
    assert.match(m, new RegExp(`^pilox_mesh_federation_peer_queue_messages\\{peer="${origin("b")}",transport="relay"\\} 0$`, "m"));
    const listed = JSON.parse((await cli(["peer", "list", "--json", "--config", site.a.cfg])).stdout);
    assert.deepEqual(listed.map((p: { origin: string; fingerprints: string[]; file: string }) => [p.origin, p.fingerprints, p.file]), [[origin("b"), [thumbprint(site.b.key!.publicKeyHex)], file]]);
  });

  it("refuses loudly a peer whose key changed since it was added", async () => {
    const file = s.path("a-etc", "conf.d", `peer-127.0.0.1-${site.b.port}.toml`);
    const pinned = readFileSync(file, "utf8");
    const other = createKeyFile(s.path("other.key"));
    writeFileSync(file, pinned.replace(site.b.key!.publicKeyHex, other.publicKeyHex));
    try {
      const r = await cli(["peer", "add", origin("b"), `--pin=${thumbprint(site.b.key!.publicKeyHex)}`, "--config", site.a.cfg]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /WARNING: .*'s KEY HAS CHANGED!/);
      assert.match(r.stderr, new RegExp(`pins ${thumbprint(other.publicKeyHex)}`));
    } finally {
      writeFileSync(file, pinned);
    }
  });

  it("removes a peer it added, with a reload that allows the removal; a hand-configured one is pointed to its file", async () => {
    const r = await cli(["peer", "remove", origin("b"), "--config", site.a.cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(s.path("a-etc", "conf.d", `peer-127.0.0.1-${site.b.port}.toml`)));
    await waitFor(() => site.a.app!.federation.peers().size === 0, 5_000, "A without B");
    const missing = await cli(["peer", "remove", "https://nobody.example", "--config", site.a.cfg]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /was not added by peer add/);
  });
});
