/**
 * The state directory's format version: a fresh or older directory is marked with this build's
 * format; a directory (or registry database) written by a newer format is refused with exit 78,
 * naming both versions and what to do, before anything in it is read or changed.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { STATE_FORMAT } from "../src/daemon/state-format.ts";
import { STORE_FORMAT } from "../src/registry/store.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { startAppliance } from "./helpers/appliance.ts";
import { cli } from "./helpers/cli.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";

const s = scratch();
after(() => s.cleanup());

async function config(name: string, registry = false): Promise<{ cfg: string; state: string }> {
  const port = await freePort();
  const state = s.path(`${name}-state`);
  createKeyFile(s.path(`${name}.key`));
  const cfg = s.write(
    `${name}.toml`,
    `[node]\nstate_dir = "${state}"\n[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${s.path(`${name}.key`)}"\n[http]\nlisten = "127.0.0.1:${port}"\n` +
      `[api]\nsocket = "${s.path(`${name}.sock`)}"\n${registry ? "[registry]\nenabled = true\n" : ""}`,
  );
  return { cfg, state };
}

describe("the state directory's format", { timeout: 60_000 }, () => {
  it("a fresh directory is marked with this build's format", async () => {
    const { cfg, state } = await config("fresh");
    const app = await startAppliance(cfg, state);
    await app.stop();
    assert.equal(readFileSync(`${state}/state-format`, "utf8").trim(), String(STATE_FORMAT));
  });

  it("a directory written by a newer format is refused: exit 78, both versions, what to do", async () => {
    const { cfg, state } = await config("newer");
    mkdirSync(state, { recursive: true });
    writeFileSync(`${state}/state-format`, `${STATE_FORMAT + 7}\n`);
    const r = await cli(["serve", "--config", cfg]);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, new RegExp(`state format ${STATE_FORMAT + 7} was written by a newer pilox-mesh; this build understands format ${STATE_FORMAT} and older`));
    assert.match(r.stderr, /Upgrades and downgrades/);
    assert.equal(readFileSync(`${state}/state-format`, "utf8").trim(), String(STATE_FORMAT + 7), "left as it was");
  });

  it("a registry database written by a newer format is refused the same way", async () => {
    const { cfg, state } = await config("newer-registry", true);
    mkdirSync(state, { recursive: true });
    const db = new DatabaseSync(`${state}/registry.sqlite`);
    db.exec(`PRAGMA user_version = ${STORE_FORMAT + 1}`);
    db.close();
    const r = await cli(["serve", "--config", cfg]);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, new RegExp(`registry format ${STORE_FORMAT + 1}`));
  });
});
