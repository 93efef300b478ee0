/**
 * docs/operator-guide.md, followed literally by an operator and run as the service user would
 * run it: the secret-creation command and the key rotation (drop-in, modes, reloads) are taken
 * from the guide's own text, with /etc/pilox-mesh and the `pilox-mesh` user mapped onto a
 * scratch directory and a scratch system user. (As root, as CI and a real host are; a
 * developer without root runs them as themselves.)
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { waitFor } from "./helpers/bus.ts";
import { http } from "./helpers/appliance.ts";
import { ROOT } from "./helpers/cli.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch } from "./helpers/tmp.ts";

const X64 = `${ROOT}/dist/pilox-mesh-linux-x64`;
const GUIDE = readFileSync(`${ROOT}/docs/operator-guide.md`, "utf8");
const s = scratch("pilox-guide-");
const asRoot = process.getuid?.() === 0;
const USER = `pmg${process.pid % 100000}`;
const ETC = s.path("etc", "pilox-mesh");
let uid = process.getuid?.() ?? 0;
let gid = process.getgid?.() ?? 0;
let redis: TestRedis;

/** A command of the guide, with its paths and user mapped onto the scratch install. */
function fromGuide(re: RegExp): string {
  const m = re.exec(GUIDE);
  assert.ok(m, `the guide has ${re}`);
  return m[0].replaceAll("/etc/pilox-mesh", ETC).replace(/(-[og] |chgrp |chown )pilox-mesh/g, `$1${asRoot ? USER : String(uid)}`).replace(/pilox-mesh: /g, asRoot ? `${USER}: ` : `${uid}: `);
}

function sh(cmd: string): void {
  const r = spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd}\n${r.stderr}`);
}

/** pilox-mesh as the service user. */
function asService(args: string[]): { code: number; out: string } {
  const [cmd, argv] = asRoot ? ["runuser", ["-u", USER, "--", X64, ...args]] : [X64, args];
  const r = spawnSync(cmd, argv as string[], { encoding: "utf8" });
  return { code: r.status ?? -1, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

before(async () => {
  redis = await startRedis();
  if (asRoot) {
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]);
    uid = Number(execFileSync("id", ["-u", USER], { encoding: "utf8" }));
    gid = Number(execFileSync("id", ["-g", USER], { encoding: "utf8" }));
    // The scratch directory stands for / : the service user must be able to walk into it.
    chmodSync(s.dir, 0o755);
  }
  mkdirSync(`${ETC}/conf.d`, { recursive: true });
  // As install.sh and the package lay it out: root-owned, the service's group may read.
  chmodSync(ETC, 0o750);
  chmodSync(`${ETC}/conf.d`, 0o750);
  if (asRoot) {
    chownSync(ETC, 0, gid);
    chownSync(`${ETC}/conf.d`, 0, gid);
  }
  mkdirSync(s.path("state"), { mode: 0o700 });
  mkdirSync(s.path("run"), { mode: 0o755 });
  if (asRoot) {
    chownSync(s.path("state"), uid, gid);
    chownSync(s.path("run"), uid, gid);
  }
});
after(async () => {
  await redis.stop();
  if (asRoot) spawnSync("userdel", [USER]);
  s.cleanup();
});

describe("the operator guide, followed as written", { timeout: 120_000 }, () => {
  let port: number;
  const sock = () => s.path("run", "api.sock");
  const config = (primary: "k1" | "k2", withK1 = true) =>
    `[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${sock()}"\n[bus.redis]\nurl = "${redis.url}"\n` +
    (withK1 ? `[[bus.keys]]\nid = "k1"\nsecret_file = "${ETC}/bus-k1.key"\n${primary === "k1" ? "primary = true\n" : ""}` : "");
  const writeConfig = (text: string) => {
    writeFileSync(`${ETC}/pilox-mesh.toml`, text);
    chmodSync(`${ETC}/pilox-mesh.toml`, 0o640);
    if (asRoot) chownSync(`${ETC}/pilox-mesh.toml`, 0, gid);
  };

  it("creates a secret the service user can read (and only it), with the guide's command", () => {
    const create = fromGuide(/head -c 32 \/dev\/urandom .*bus-k1\.key/);
    sh(create);
    sh(create.replace("bus-k1.key", "bus-k2.key"));
    const key = readFileSync(`${ETC}/bus-k1.key`, "utf8");
    assert.match(key, /^[0-9a-f]{64}$/);
    port = 0;
    writeConfig(config("k1").replace('listen = "127.0.0.1:0"', ""));
    const c = asService(["--config", `${ETC}/pilox-mesh.toml`, "--state-dir", s.path("state"), "check-config", "--quiet"]);
    assert.equal(c.code, 0, c.out);
  });

  it("rotates the bus key as the guide says, with the appliance running as the service user", async () => {
    port = await freePort();
    writeConfig(config("k1"));
    const args = ["--config", `${ETC}/pilox-mesh.toml`, "--state-dir", s.path("state")];
    const [cmd, argv] = asRoot ? ["runuser", ["-u", USER, "--", X64, ...args, "serve"]] : [X64, [...args, "serve"]];
    const p = spawn(cmd, argv as string[], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    p.stderr!.on("data", (d) => (log += d));
    try {
      await waitFor(() => log.includes("msg=ready"), 20_000, "ready");
      // Step 1: the drop-in from the guide, with the guide's modes; k1 says primary.
      const dropIn = /```toml\n(\[\[bus\.keys\]\]\nid = "k2"[\s\S]*?)```/.exec(GUIDE.replace(/^ {3}/gm, ""))![1]!.replaceAll("/etc/pilox-mesh", ETC);
      writeFileSync(`${ETC}/conf.d/20-k2.toml`, dropIn);
      sh(fromGuide(/chgrp pilox-mesh FILE && chmod 640 FILE/).replaceAll("FILE", `${ETC}/conf.d/20-k2.toml`));
      const reload = () => asService(["reload", "--socket", sock()]);
      let r = reload();
      assert.equal(r.code, 0, r.out);
      let st = JSON.parse(asService(["status", "--json", "--socket", sock()]).out);
      assert.deepEqual(st.bus.keys.sort(), ["k1", "k2"]);
      assert.equal(st.bus.primaryKey, "k1");
      // Step 2: k2 primary, removed from k1.
      writeConfig(config("k2"));
      writeFileSync(`${ETC}/conf.d/20-k2.toml`, dropIn + "primary = true\n");
      r = reload();
      assert.equal(r.code, 0, r.out);
      st = JSON.parse(asService(["status", "--json", "--socket", sock()]).out);
      assert.equal(st.bus.primaryKey, "k2");
      // Step 3: k1 removed; a plain reload refuses, the guide's command applies it.
      writeConfig(config("k2", false));
      r = reload();
      assert.equal(r.code, 78, r.out);
      assert.match(r.out, /removes bus keys k1/);
      r = asService(["reload", "--allow-removals", "--socket", sock()]);
      assert.equal(r.code, 0, r.out);
      st = JSON.parse(asService(["status", "--json", "--socket", sock()]).out);
      assert.deepEqual(st.bus.keys, ["k2"]);
      assert.equal((await http({ port }, "GET", "/readyz")).status, 200);
    } finally {
      p.kill("SIGTERM");
      await new Promise((r) => p.on("exit", r));
    }
  });

  it("keygen for the identity rotation leaves a key the service user can read", () => {
    sh(`${X64} ${fromGuide(/keygen --out \/etc\/pilox-mesh\/next\.key && chown\npilox-mesh: \/etc\/pilox-mesh\/next\.key/).replace("\n", " ")}`);
    const r = asService(["pubkey", "--key-file", `${ETC}/next.key`]);
    assert.equal(r.code, 0, r.out);
  });
});

/** Every `pilox-mesh …` line of the guide's shell blocks, comments and redirections cut off. */
function guideCommands(): string[] {
  const blocks = [...GUIDE.matchAll(/```(?:sh|bash|console)\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .flatMap((b) => b.split("\n"))
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("pilox-mesh "))
    .map((l) => l.split(/\s[<>|]\s/)[0]!.trim());
}

describe("every pilox-mesh command in the guide", { timeout: 120_000 }, () => {
  const WITH_SUB = new Set(["token", "manifest", "registry", "audit", "bus"]);
  const pre = (): string[] => ["--config", `${ETC}/pilox-mesh.toml`, "--state-dir", s.path("state")];

  it("is a command the executable knows, with options its help names", () => {
    const lines = guideCommands();
    assert.ok(lines.length >= 15, `${lines.length} commands found in the guide`);
    for (const line of lines) {
      // Global options before the command (`pilox-mesh --config FILE peer add …`) are the
      // top-level help's, not the command's.
      const words = line.split(/\s+/).slice(1);
      while ((words[0] === "--config" || words[0] === "--state-dir") && words.length > 2) words.splice(0, 2);
      // `pilox-mesh COMMAND --help` stands for every command; checked by the loop itself.
      if (words[0] === "COMMAND") continue;
      const cmd = words[0]!.startsWith("-") ? [] : WITH_SUB.has(words[0]!) && words[1] && !words[1].startsWith("-") ? words.slice(0, 2) : words.slice(0, 1);
      const help = asService([...pre(), ...cmd, "--help"]);
      assert.equal(help.code, 0, `${line}: ${help.out}`);
      for (const flag of words.map((w) => w.replace(/^\[/, "")).filter((w) => /^--[a-z-]+$/.test(w) && w !== "--help")) {
        assert.ok(help.out.includes(flag), `${line}: "${cmd.join(" ")} --help" does not name ${flag}\n${help.out}`);
      }
    }
  });

  it("the offline ones run as written, as the service user: token, manifest and registry sign and verify", () => {
    const dir = s.path("offline");
    mkdirSync(dir, { mode: 0o755, recursive: true });
    if (asRoot) chownSync(dir, uid, gid);
    const key = `${dir}/identity.key`;
    let r = asService(["keygen", "--out", key]);
    assert.equal(r.code, 0, r.out);
    const pub = asService(["pubkey", "--key-file", key]).out.trim();
    const run = (line: string, subst: Record<string, string>, stdin?: string) => {
      let l = line;
      for (const [k, v] of Object.entries(subst)) l = l.replaceAll(k, v);
      // Optional parts (`[--at UNIX]`) are left out, as an operator copying the line would.
      const argv = l.replace(/\s*\[[^\]]*\]/g, "").split(/\s+/).slice(1);
      const [c, a] = asRoot ? ["runuser", ["-u", USER, "--", X64, ...argv]] : [X64, argv];
      const p = spawnSync(c, a as string[], { encoding: "utf8", input: stdin ?? "" });
      assert.equal(p.status, 0, `${l}\n${p.stdout}${p.stderr}`);
      return p.stdout;
    };
    const lines = guideCommands();
    const find = (re: RegExp) => {
      const l = lines.find((x) => re.test(x));
      assert.ok(l, `the guide shows ${re}`);
      return l!;
    };
    const keys = { "/var/lib/pilox-mesh/identity.key": key, "signer.key": key, "agent.key": key, "<pubhex>": pub, "<signer pubhex>": pub };
    const token = run(find(/^pilox-mesh token mint /), keys).trim();
    const claims = JSON.parse(run(find(/^pilox-mesh token verify /), keys, token));
    assert.equal(claims.iss, "https://a.example");
    const payload = /```json\n(\{"v": 1, "issuedAt"[^\n]*)\n```/.exec(GUIDE)![1]!.replace("<b's public key, 64 hex>", pub);
    const manifest = run(find(/^pilox-mesh manifest sign /), keys, payload);
    run(find(/^pilox-mesh manifest verify /), keys, manifest);
    const record = { schema: "pilox-registry-record-v1", handle: "urn:pilox:agent:example:1", updatedAt: "2026-11-01T00:00:00Z", agentCardUrl: "https://agents.example/card.json" };
    const signed = run(find(/^pilox-mesh registry sign /), keys, JSON.stringify(record));
    const v = spawnSync(asRoot ? "runuser" : X64, asRoot ? ["-u", USER, "--", X64, "registry", "verify", "--require-proof", "--public-key", pub] : ["registry", "verify", "--require-proof", "--public-key", pub], { encoding: "utf8", input: signed });
    assert.equal(v.status, 0, v.stdout + v.stderr);
  });
});
