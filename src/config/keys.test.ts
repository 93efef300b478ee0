/**
 * Every path key, relative in the configuration, is resolved against the directory of the file
 * that set it, whatever the working directory (under systemd it is "/"): read from the schema,
 * so a path key added later is covered without touching this test.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadConfig } from "./load.ts";
import { schemaKeys } from "./keys.ts";
import { ConfigSchema } from "./schema.ts";

const PATH_KEYS = schemaKeys(ConfigSchema).filter((k) => k.path).map((k) => k.key);

/** TOML setting each of `keys` to "rel/<key>" (arrays of tables get one table, with `extra`). */
function toml(keys: string[], extra: Record<string, string> = {}): string {
  const tables = new Map<string, string[]>();
  for (const key of keys) {
    const parts = key.split(".");
    const leaf = parts.pop()!;
    const table = parts.join(".");
    if (!tables.has(table)) tables.set(table, []);
    tables.get(table)!.push(`${leaf} = "rel/${key.replaceAll("[]", "")}"`);
  }
  return [...tables]
    .map(([t, lines]) => (t.endsWith("[]") ? `[[${t.slice(0, -2)}]]\n` : t ? `[${t}]\n` : "") + (extra[t] ?? "") + lines.join("\n") + "\n")
    .join("\n");
}

function get(o: unknown, key: string): unknown {
  return key.split(".").reduce<unknown>((x, p) => (p.endsWith("[]") ? (x as Record<string, unknown[]>)[p.slice(0, -2)]![0] : (x as Record<string, unknown>)[p]), o);
}

describe("relative path keys", () => {
  it("covers every path key the schema has (31 today)", () => {
    assert.ok(PATH_KEYS.length >= 31, PATH_KEYS.join(", "));
  });

  // Two settings exclude each other (Sentinel's password, TLS to one server): two rounds.
  const rounds: [string, (k: string) => boolean, Record<string, string>][] = [
    ["TLS to one Redis", (k) => k !== "bus.redis.sentinel_password_file", { "bus.redis": 'url = "rediss://127.0.0.1:6380"\n' }],
    ["Redis Sentinel", (k) => k === "bus.redis.sentinel_password_file" || !k.startsWith("bus.redis."), { "bus.redis": 'sentinels = ["127.0.0.1:26379"]\nsentinel_master = "m"\n' }],
  ];
  for (const [name, take, tableExtra] of rounds) it(`are resolved against the main file's directory, and a drop-in's against its own, from any working directory (${name})`, () => {
    const dir = mkdtempSync(join(tmpdir(), "pilox-paths-"));
    const cwd = process.cwd();
    try {
      const etc = join(dir, "etc");
      mkdirSync(join(etc, "conf.d"), { recursive: true });
      const extra = { "bus.keys[]": 'id = "k1"\n', ...tableExtra };
      // The main file sets every path key but the bus keys, which a drop-in sets.
      const inMain = PATH_KEYS.filter((k) => !k.startsWith("bus.keys") && take(k));
      const inDropIn = PATH_KEYS.filter((k) => k.startsWith("bus.keys"));
      writeFileSync(join(etc, "main.toml"), toml(inMain, extra));
      writeFileSync(join(etc, "conf.d", "keys.toml"), toml(inDropIn, extra));
      process.chdir(tmpdir());
      let config: unknown;
      try {
        config = loadConfig({ path: join(etc, "main.toml"), env: {} }).config;
      } catch (err) {
        // A semantic rule (pairs of settings) is not this test's business: only a path problem is.
        const problems = (err as { problems?: { key?: string; message: string }[] }).problems ?? [];
        assert.fail(`the configuration was refused: ${problems.map((p) => `${p.key}: ${p.message}`).join("; ") || (err as Error).message}`);
      }
      for (const key of inMain) assert.equal(get(config, key), join(etc, "rel", key.replaceAll("[]", "")), key);
      for (const key of inDropIn) assert.equal(get(config, key), join(etc, "conf.d", "rel", key.replaceAll("[]", "")), `${key} (drop-in)`);
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("restart-only keys", () => {
  it("a reload keeps their running values (in every part of the configuration) and names each one", async () => {
    const { pinnedForReload, restartOnlyChanges } = await import("./reload.ts");
    const dir = mkdtempSync(join(tmpdir(), "pilox-restart-"));
    try {
      const write = (name: string, text: string) => {
        writeFileSync(join(dir, name), text);
        return loadConfig({ path: join(dir, name), env: {} }).config;
      };
      const running = write("a.toml", `[node]\nstate_dir = "/var/lib/a"\n[registry]\nenabled = true\nmax_records = 10\n[registry.postgres]\nurl = "postgres://u@h/db"\n[api]\nsocket_mode = "0660"\n`);
      const next = write("b.toml", `[node]\nstate_dir = "/var/lib/b"\n[registry]\nenabled = true\nmax_records = 20\n[registry.postgres]\nurl = "postgres://u@other/db"\n[api]\nsocket_mode = "0600"\n`);
      assert.deepEqual(restartOnlyChanges(running, next).sort(), ["api.socket_mode", "node.state_dir", "registry.postgres.url"]);
      const pinned = pinnedForReload(running, next);
      assert.equal(pinned.node.state_dir, "/var/lib/a", "the running state directory, for every role");
      assert.equal(pinned.registry.postgres.url, "postgres://u@h/db");
      assert.equal(pinned.api.socket_mode, "0660");
      assert.equal(pinned.registry.max_records, 20, "what a reload may change is changed");
      assert.equal(running.registry.max_records, 10, "the running configuration is not touched");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
