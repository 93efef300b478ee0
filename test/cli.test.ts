/** The command line as operators and the acceptance checks call it. */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { cli, ENTRY, ROOT } from "./helpers/cli.ts";
import { waitFor } from "./helpers/bus.ts";
import { http } from "./helpers/appliance.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";
import { vectors } from "./helpers/vectors.ts";

const s = scratch();
const specKey = s.write("spec.key", vectors.bus.secret);
const message = JSON.stringify({ ...vectors.bus.core, meshMeta: vectors.bus.meshMeta });
after(() => s.cleanup());

describe("bus seal / verify", () => {
  it("seal reproduces the spec wire bytes", async () => {
    const r = await cli(["bus", "seal", "--channel", vectors.bus.channel, "--secret-file", specKey], { stdin: message });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, JSON.stringify(vectors.bus.wire) + "\n");
  });

  it("verify accepts the spec wire message", async () => {
    const r = await cli(["bus", "verify", "--channel", vectors.bus.channel, "--secret-file", specKey], { stdin: JSON.stringify(vectors.bus.wire) });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "valid\n");
  });

  const bad: [string, string, string[], RegExp][] = [
    ["tampered payload", JSON.stringify({ ...vectors.bus.wire, type: "agent.deleted" }), [], /^forged/],
    ["another channel", JSON.stringify(vectors.bus.wire), ["--channel", "pilox:agent:status"], /^forged/],
    ["no meshSig", JSON.stringify({ ...vectors.bus.wire, meshSig: undefined }), [], /^unsigned/],
    ["not JSON", "{", [], /^malformed/],
  ];
  for (const [name, stdin, extra, reason] of bad) {
    it(`verify: ${name} → exit 1 with the reason`, async () => {
      const args = ["bus", "verify", "--channel", vectors.bus.channel, "--secret-file", specKey];
      if (extra.length) args.splice(2, 2, ...extra);
      const r = await cli(args, { stdin });
      assert.equal(r.code, 1);
      assert.match(r.stdout, reason);
    });
  }

  it("verify with another key → exit 1", async () => {
    const other = s.write("other.key", SECRET_A);
    const r = await cli(["bus", "verify", "--channel", vectors.bus.channel, "--secret-file", other], { stdin: JSON.stringify(vectors.bus.wire) });
    assert.equal(r.code, 1);
  });

  it("a group-readable secret file is refused with the chmod to run", async () => {
    const loose = s.write("loose.key", vectors.bus.secret, 0o640);
    const r = await cli(["bus", "seal", "--channel", vectors.bus.channel, "--secret-file", loose], { stdin: message });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /chmod 600/);
  });
});

describe("shell completion, from the help text", () => {
  it("bash completes commands, a command's subcommands and its flags", async () => {
    const script = s.write("completion.bash", (await cli(["completion", "bash"])).stdout);
    const complete = (...words: string[]) => {
      const r = spawnSync("bash", ["-c", `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _pilox_mesh; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim().split("\n");
    };
    assert.deepEqual(complete("pilox-mesh", "reg"), ["registry"]);
    assert.deepEqual(complete("pilox-mesh", "registry", "te"), ["template"]);
    assert.ok(complete("pilox-mesh", "resolve", "--acc").includes("--accept-proof-v1"));
    assert.equal((await cli(["completion", "tcsh"])).code, 2);
  });
});

describe("usage errors exit 2", () => {
  const cases: [string, string[]][] = [
    ["missing --channel", ["bus", "seal", "--secret-file", "x"]],
    ["unknown flag", ["bus", "verify", "--chanel", "x"]],
    ["unknown command", ["frobnicate"]],
    ["unknown bus command", ["bus", "shout"]],
    ["no command", []],
    ["bad --listen", ["serve", "--listen", "nowhere"]],
  ];
  for (const [name, args] of cases) {
    it(name, async () => {
      const r = await cli(args);
      assert.equal(r.code, 2, r.stderr);
    });
  }

  it("version prints the version and runtime", async () => {
    const r = await cli(["version"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^pilox-mesh \S+ \(commit \S+, node \d+\.\d+\.\d+, linux-/);
  });
});

describe("serve, publish, subscribe, SIGHUP, SIGTERM", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => redis.stop());

  it("runs as an operator would, through the CLI", { timeout: 60_000 }, async () => {
    const port = await freePort();
    s.write("bus.key", SECRET_A);
    const config = s.write(
      "serve.toml",
      `[api]\nsocket = "${s.path("serve.sock")}"\n[bus.redis]\nurl = "${redis.url}"\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("bus.key")}"\n[[bus.channels]]\nname = "jobs"\ndurable = true\n`,
    );
    const state = s.path("serve-state");
    const proc = spawn(process.execPath, ["--import", "tsx", ENTRY, "--config", config, "--state-dir", state, "serve", "--listen", `127.0.0.1:${port}`], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    proc.stderr.on("data", (d) => (log += d));
    const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
    try {
      await waitFor(() => log.includes("msg=ready"), 20_000, "serve ready");
      assert.equal((await http({ port }, "GET", "/healthz")).status, 200);

      // subscribe through the appliance (JSON lines), then publish through it
      const sub = spawn(process.execPath, ["--import", "tsx", ENTRY, "--config", config, "--state-dir", state, "bus", "subscribe", "--channel", "news"], { cwd: ROOT });
      let lines = "";
      sub.stdout.on("data", (d) => (lines += d));
      await new Promise((r) => setTimeout(r, 1_500));
      const p = await cli(["--config", config, "--state-dir", state, "bus", "publish", "--channel", "news", '{"headline":"hello"}']);
      assert.equal(p.code, 0, p.stderr);
      const eventId = JSON.parse(p.stdout).eventId;
      await waitFor(() => lines.includes("\n"), 10_000, "subscribed line");
      const got = JSON.parse(lines.split("\n")[0]!);
      assert.equal(got.headline, "hello");
      assert.equal(got.meshMeta.eventId, eventId);
      sub.kill("SIGINT");

      // straight to Redis, no appliance in between, read back through the durable stream
      const d = await cli(["--config", config, "--state-dir", state, "bus", "publish", "--direct", "--channel", "jobs", '{"n":1}']);
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stdout, /"durable":true/);

      // SIGHUP with an invalid config: rejected, still serving
      const { writeFileSync, readFileSync } = await import("node:fs");
      const good = readFileSync(config, "utf8");
      writeFileSync(config, good + "\n[bus]\nnonsense = 1\n");
      proc.kill("SIGHUP");
      await waitFor(() => log.includes("reload rejected"), 10_000, "reload rejected");
      assert.match(log, /bus.nonsense: unknown key/);
      assert.equal((await http({ port }, "GET", "/readyz")).status, 200);
      // and with a valid one
      writeFileSync(config, good.replace("[bus.redis]", "[bus]\nmax_age_seconds = 120\n[bus.redis]"));
      proc.kill("SIGHUP");
      await waitFor(() => log.includes("configuration reloaded"), 10_000, "reloaded");

      // SIGTERM drains and exits 0
      proc.kill("SIGTERM");
      assert.equal(await exited, 0);
      assert.match(log, /msg=stopped/);
    } finally {
      proc.kill("SIGKILL");
    }
  });

  it("publish with no appliance running exits 69 and says so", async () => {
    const r = await cli(["bus", "publish", "--socket", s.path("nobody.sock"), "--channel", "x", "{}"]);
    assert.equal(r.code, 69);
    assert.match(r.stderr, /is pilox-mesh serve running/);
  });

  it("a config error at serve start exits 78", async () => {
    const bad = s.write("bad.toml", "[http]\nlisten = 7420\n");
    const r = await cli(["--config", bad, "serve"]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /http.listen: expected string, got 7420/);
  });
});
