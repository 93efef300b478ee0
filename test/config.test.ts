/** Every class of configuration error: its message names the file and key, and exit code 78. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdirSync } from "node:fs";
import { after, describe, it } from "node:test";
import { loadConfig, resolveSecrets, ConfigError } from "../src/config/index.ts";
import { cli } from "./helpers/cli.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
after(() => s.cleanup());

function expectConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

describe("config errors", () => {
  it("syntax error: file, line and column, exit 78", async () => {
    const f = s.write("syntax.toml", '[bus]\nmax_age_seconds = 30\nbackend = "redis\n');
    const r = await cli(["check-config", "--config", f]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, new RegExp(`${f}:3:\\d+: TOML syntax`));
    // An unterminated string is said to be one, at its opening quote (not "control characters").
    assert.match(r.stderr, new RegExp(`${f}:3:11: TOML syntax: the string opened here is not closed`));
    assert.doesNotMatch(r.stderr, /control characters/);
  });

  it("a rotation finished literally (next_key_file = the current key) is warned about", async () => {
    const key = s.write("rot.key", "ab".repeat(32));
    const f = s.write("rot.toml", `[instance]\nkey_file = "${key}"\nnext_key_file = "${key}"\n`);
    const r = await cli(["check-config", "--config", f, "--state-dir", s.path("rot-state"), "-q"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: instance\.next_key_file holds the current key .*clear next_key_file and reload/);
  });

  it("registry limits are checked by range; a registry peer without prefixes gets a note", async () => {
    const bad = s.write("quota.toml", "[registry]\nmax_records_per_key = 0\n");
    const r = await cli(["check-config", "--config", bad]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /registry.max_records_per_key/);
    const peer = s.write("peer.toml", `[registry]\nenabled = true\n[[registry.peers]]\nurl = "https://reg.example"\ncatalog_public_keys = ["${"ab".repeat(32)}"]\n`);
    const ok = await cli(["check-config", "--config", peer, "-q"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /note: registry.peers https:\/\/reg.example has no prefixes: its signed deletes are honoured for every handle/);
  });

  it("unknown key: file and key path, exit 78", async () => {
    const f = s.write("unknown.toml", "[bus]\nmax_age_secnds = 30\n");
    const r = await cli(["check-config", "--config", f]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, new RegExp(`${f}: bus.max_age_secnds: unknown key`));
  });

  it("wrong type: names expected and received", async () => {
    const f = s.write("type.toml", '[bus]\nmax_age_seconds = "thirty"\n');
    const r = await cli(["check-config", "--config", f]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /bus.max_age_seconds: expected number, got "thirty"/);
  });

  it("out of range and bad enum values", () => {
    const f = s.write("range.toml", '[bus]\nmax_age_seconds = 0\n[log]\nlevel = "loud"\n');
    const e = expectConfigError(() => loadConfig({ path: f, env: {} }));
    const keys = e.problems.map((p) => p.key).sort();
    assert.deepEqual(keys, ["bus.max_age_seconds", "log.level"]);
  });

  it("wan.stream_replicas is 1, 3 or 5 (2 is refused, naming the key); [wan] on a Redis Cluster is taken", async () => {
    const two = await cli(["--config", s.write("r2.toml", '[wan]\nnats_urls = ["nats://127.0.0.1:4222"]\nstream_replicas = 2\n'), "--state-dir", s.path("r2-state"), "check-config"]);
    assert.equal(two.code, 78);
    assert.match(two.stderr, /r2\.toml: wan\.stream_replicas: expected \(1 \| 3 \| 5\), got 2/);
    s.write("r3-bus.key", "bus-secret-r3-0123456789abcdef0123456789");
    const three = await cli(["--config", s.write("r3.toml", `[wan]\nnats_urls = ["nats://127.0.0.1:4222"]\nstream_replicas = 3\n[bus.redis]\ncluster_nodes = ["127.0.0.1:7000"]\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("r3-bus.key")}"\n`), "--state-dir", s.path("r3-state"), "check-config", "--quiet"]);
    assert.equal(three.code, 0, three.stderr);
  });

  it("the WAN's settings are checked together, each problem naming its key", () => {
    const peer = '[[federation.peers]]\norigin = "https://b.example"\npublic_keys = ["' + "ab".repeat(32) + '"]\ntransport = "wan"\n';
    const off = expectConfigError(() => loadConfig({ path: s.write("wan-off.toml", peer), env: {} }));
    assert.deepEqual(off.problems.map((p) => p.key), ["federation.peers[0].transport"]);
    const bad = expectConfigError(() =>
      loadConfig({
        path: s.write(
          "wan-bad.toml",
          peer +
            '[wan]\nnats_urls = ["nats://127.0.0.1:4222"]\ntoken_file = "/t"\ncreds_file = "/c"\ntls_cert_file = "/x.pem"\ndlq_subject_prefix = "pilox-mesh.wan.v1.dlq"\n[wan.pilox]\nstream = "PILOX_MESH_WAN_V1"\n[bus.redis]\ncluster_nodes = ["127.0.0.1:7000"]\n',
        ),
        env: {},
      }),
    );
    assert.deepEqual(bad.problems.map((p) => p.key ?? "").filter((k) => k.startsWith("wan.")).sort(), ["wan.dlq_subject_prefix", "wan.nats_urls", "wan.pilox.stream", "wan.tls_key_file", "wan.token_file"].sort());
    const transport = expectConfigError(() => loadConfig({ path: s.write("wan-transport.toml", peer.replace('"wan"', '"carrier-pigeon"')), env: {} }));
    assert.match(transport.problems[0]!.message, /"relay" \| "wan"\), got "carrier-pigeon"/);
  });

  it("missing secret file: names the key and the path, exit 78", async () => {
    const f = s.write("missing.toml", `[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("nope.key")}"\n`);
    const r = await cli(["check-config", "--config", f]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /bus.keys\[0\].secret_file: secret file .*nope.key does not exist/);
  });

  it("loose permissions: says the chmod to run, exit 78", async () => {
    const key = s.write("loose.key", SECRET_A, 0o644);
    const f = s.write("loose.toml", `[[bus.keys]]\nid = "k1"\nsecret_file = "${key}"\n`);
    const r = await cli(["check-config", "--config", f]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, new RegExp(`readable by group or others \\(mode 0644\\); run: chmod 600 ${key}`));
  });

  it("a short secret is refused", () => {
    const key = s.write("short.key", "short");
    const f = s.write("short.toml", `[[bus.keys]]\nid = "k1"\nsecret_file = "${key}"\n`);
    const e = expectConfigError(() => resolveSecrets(loadConfig({ path: f, env: {} }), false));
    assert.match(e.message, /at least 32 bytes/);
  });

  it("an explicit config path that does not exist is an error", async () => {
    const r = await cli(["check-config", "--config", s.path("absent.toml")]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /absent.toml: configuration file does not exist/);
  });

  it("redis backend without keys, password in URL, non-loopback agent API", () => {
    const f = s.write("sem.toml", '[bus]\nbackend = "redis"\n[bus.redis]\nurl = "redis://:hunter2@127.0.0.1:6379"\n[api]\nlisten = "0.0.0.0:7421"\n');
    const e = expectConfigError(() => loadConfig({ path: f, env: {} }));
    const msg = e.message;
    assert.match(msg, /bus.keys: at least one/);
    assert.match(msg, /bus.redis.url: holds a password; put it in bus.redis.password_file/);
    assert.match(msg, /api.listen: the agent API listens on loopback only/);
    assert.match(msg, /api.token_file: required/);
    assert.doesNotMatch(msg, /hunter2/);
  });

  it("PILOX_MESH_CONFIG is used when --config is absent", async () => {
    const f = s.write("env.toml", "[bus]\nbogus = 1\n");
    const r = await cli(["check-config"], { env: { PILOX_MESH_CONFIG: f } });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /bus.bogus: unknown key/);
  });
});

describe("conf.d merging", () => {
  const dir = s.path("etc");
  mkdirSync(`${dir}/conf.d`, { recursive: true });
  const key1 = s.write("k1.key", SECRET_A);
  const key2 = s.write("k2.key", SECRET_A.replace("a", "b"));
  s.write("etc/pilox-mesh.toml", `[bus]\nmax_age_seconds = 100\nreplay_cache_size = 5000\n[[bus.keys]]\nid = "k1"\nsecret_file = "${key1}"\n[[bus.channels]]\nname = "jobs"\n`);
  s.write("etc/conf.d/20-later.toml", `[bus]\nmax_age_seconds = 300\n`);
  s.write("etc/conf.d/10-keys.toml", `[[bus.keys]]\nid = "k2"\nsecret_file = "${key2}"\nprimary = true\n[[bus.channels]]\nname = "audit"\ndurable = true\n`);
  s.write("etc/conf.d/30-typo.toml.disabled", `[bus]\nnope = 1\n`);

  it("tables merge, later scalars win, arrays of tables append, in lexical order", () => {
    const { config, files } = loadConfig({ path: `${dir}/pilox-mesh.toml`, env: {} });
    assert.deepEqual(files.map((f) => f.slice(dir.length)), ["/pilox-mesh.toml", "/conf.d/10-keys.toml", "/conf.d/20-later.toml"]);
    assert.equal(config.bus.max_age_seconds, 300);
    assert.equal(config.bus.replay_cache_size, 5000);
    assert.deepEqual(config.bus.keys.map((k) => k.id), ["k1", "k2"]);
    assert.deepEqual(config.bus.channels.map((c) => [c.name, c.durable]), [["jobs", false], ["audit", true]]);
    const secrets = resolveSecrets(loadConfig({ path: `${dir}/pilox-mesh.toml`, env: {} }), false);
    assert.equal(secrets.ring.primary.id, "k2");
  });

  it("an error in a drop-in names the drop-in", async () => {
    s.write("etc/conf.d/40-bad.toml", `[bus.redis]\nstream_max_len = "many"\n`);
    const r = await cli(["check-config", "--config", `${dir}/pilox-mesh.toml`]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /conf\.d\/40-bad\.toml: bus\.redis\.stream_max_len: expected number/);
  });
});

describe("defaults and check-config output", () => {
  it("works with no file at all and prints the effective config", async () => {
    const r = await cli(["check-config", "--state-dir", s.path("st")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /backend = "embedded"/);
    assert.match(r.stdout, /listen = "127.0.0.1:7420"/);
    assert.match(r.stderr, /configuration OK/);
  });

  it("non-root state dir falls back to XDG_STATE_HOME", () => {
    const f = s.write("empty.toml", "");
    const { config } = loadConfig({ path: f, env: { XDG_STATE_HOME: "/xdg/state" } });
    if (process.getuid?.() === 0) assert.equal(config.node.state_dir, "/var/lib/pilox-mesh");
    else assert.equal(config.node.state_dir, "/xdg/state/pilox-mesh");
  });

  it("systemd's STATE_DIRECTORY wins over the defaults", () => {
    const f = s.write("empty2.toml", "");
    const { config } = loadConfig({ path: f, env: { STATE_DIRECTORY: "/var/lib/pilox-mesh-x", RUNTIME_DIRECTORY: "/run/x" } });
    assert.equal(config.node.state_dir, "/var/lib/pilox-mesh-x");
    assert.equal(config.api.socket, "/run/x/api.sock");
  });

  it("check-config redacts a password in a URL (even though such a URL is refused)", async () => {
    const { redactedToml } = await import("../src/config/index.ts");
    const { config } = loadConfig({ path: s.write("r.toml", ""), env: {} });
    config.bus.redis.url = "redis://user:hunter2@db:6379";
    assert.doesNotMatch(redactedToml(config), /hunter2/);
  });
});

describe("shipped examples", () => {
  it("examples/pilox-mesh.toml is a valid configuration", async () => {
    const { ROOT } = await import("./helpers/cli.ts");
    assert.doesNotThrow(() => loadConfig({ path: `${ROOT}/examples/pilox-mesh.toml`, stateDir: s.path("ex"), env: {} }));
  });

  it("uncommenting any of its settings keeps it valid TOML with known keys", async () => {
    const { ROOT } = await import("./helpers/cli.ts");
    const { parse } = await import("smol-toml");
    // A commented setting is "# key = …" or "# [table]"; prose comments stay comments.
    const text = readFileSync(`${ROOT}/examples/pilox-mesh.toml`, "utf8").replace(/^# (?=\[|[a-z_]+ = )/gm, "");
    assert.doesNotThrow(() => parse(text));
    try {
      loadConfig({ path: s.write("uncommented.toml", text), stateDir: s.path("ex2"), env: {} });
    } catch (err) {
      // Alternatives (url, sentinels, cluster_nodes) conflict when all are on, and the example
      // paths do not exist here; but no key may be unknown and the syntax must hold.
      assert.doesNotMatch((err as Error).message, /unknown key|TOML syntax/);
    }
  });

  it("every TOML block in the docs parses and uses only known keys", async () => {
    const { ROOT } = await import("./helpers/cli.ts");
    const { parse } = await import("smol-toml");
    for (const doc of ["README.md", "docs/operator-guide.md", "docs/configuration.md", "docs/agent-api.md"]) {
      const text = readFileSync(`${ROOT}/${doc}`, "utf8");
      for (const m of text.matchAll(/```toml\n([\s\S]*?)```/g)) {
        const block = m[1]!.replace(/^ {3}/gm, "");
        assert.doesNotThrow(() => parse(block), `${doc}: ${block}`);
        try {
          loadConfig({ path: s.write("doc-block.toml", block), stateDir: s.path("ex3"), env: {} });
        } catch (err) {
          assert.doesNotMatch((err as Error).message, /unknown key|TOML syntax/, `${doc}: ${block}`);
        }
      }
    }
  });
});
