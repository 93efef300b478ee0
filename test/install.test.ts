/** install.sh into a scratch root, and the systemd unit it installs. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { ROOT } from "./helpers/cli.ts";
import { assertServiceLayout, mode } from "./helpers/layout.ts";
import { scratch } from "./helpers/tmp.ts";

const run = promisify(execFile);
const s = scratch();
after(() => s.cleanup());

async function install(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const r = await run("sh", [`${ROOT}/install.sh`, ...args], { env: { PATH: process.env["PATH"]! } });
    return { code: 0, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

/** A stand-in binary: a shell script that answers `version` and `keygen` like the real one. */
function fakeBinary(name: string, version: string): { path: string; sha: string } {
  const path = s.write(
    name,
    `#!/bin/sh\ncase "$1" in\n  version) echo "pilox-mesh ${version}" ;;\n  keygen) printf '%064d\\n' 7 > "$3"; chmod 600 "$3"; echo pub ;;\nesac\n`,
    0o755,
  );
  return { path, sha: createHash("sha256").update(readFileSync(path)).digest("hex") };
}


describe("install.sh", () => {
  const root = s.path("root");
  const v1 = fakeBinary("pilox-mesh-v1", "1.0.0");

  it("installs files, user, directories with the right owners and modes", async () => {
    const r = await install(["--root", root, "--binary", v1.path, "--sha256", v1.sha]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(`${root}/usr/local/bin/pilox-mesh`, "utf8"), readFileSync(v1.path, "utf8"));
    assert.equal(mode(`${root}/usr/local/bin/pilox-mesh`), "0755");
    const passwd = readFileSync(`${root}/etc/passwd`, "utf8");
    const m = /^pilox-mesh:x:(\d+):(\d+):pilox-mesh:\/var\/lib\/pilox-mesh:\/usr\/sbin\/nologin$/m.exec(passwd);
    assert.ok(m, passwd);
    const [uid, gid] = [Number(m[1]), Number(m[2])];
    assert.ok(uid < 1000, "a system account");
    assert.match(readFileSync(`${root}/etc/group`, "utf8"), new RegExp(`^pilox-mesh:x:${gid}:$`, "m"));
    assertServiceLayout(root, uid, gid);
    assert.equal(readFileSync(`${root}/etc/systemd/system/pilox-mesh.service`, "utf8"), readFileSync(`${ROOT}/systemd/pilox-mesh.service`, "utf8"));
  });

  it("the default config it writes is valid", async () => {
    const { loadConfig } = await import("../src/config/index.ts");
    assert.doesNotThrow(() => loadConfig({ path: `${root}/etc/pilox-mesh/pilox-mesh.toml`, stateDir: s.path("st"), env: {} }));
  });

  it("is idempotent and never overwrites the config or the identity", async () => {
    writeFileSync(`${root}/etc/pilox-mesh/pilox-mesh.toml`, "# mine\n");
    const key = readFileSync(`${root}/var/lib/pilox-mesh/identity.key`, "utf8");
    const r = await install(["--root", root, "--binary", v1.path, "--sha256", v1.sha]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /keeping the existing/);
    assert.equal(readFileSync(`${root}/etc/pilox-mesh/pilox-mesh.toml`, "utf8"), "# mine\n");
    assert.equal(readFileSync(`${root}/var/lib/pilox-mesh/identity.key`, "utf8"), key);
    assert.equal(readFileSync(`${root}/etc/passwd`, "utf8").match(/^pilox-mesh:/gm)?.length, 1);
    assert.equal(readFileSync(`${root}/etc/group`, "utf8").match(/^pilox-mesh:/gm)?.length, 1);
  });

  it("upgrades in place; a wrong SHA-256 changes nothing", async () => {
    const v2 = fakeBinary("pilox-mesh-v2", "2.0.0");
    const bad = await install(["--root", root, "--binary", v2.path, "--sha256", "0".repeat(64)]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /SHA-256 mismatch/);
    assert.equal(readFileSync(`${root}/usr/local/bin/pilox-mesh`, "utf8"), readFileSync(v1.path, "utf8"));
    const ok = await install(["--root", root, "--binary", v2.path, "--sha256", v2.sha]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(readFileSync(`${root}/usr/local/bin/pilox-mesh`, "utf8"), readFileSync(v2.path, "utf8"));
    assert.ok(!existsSync(`${root}/usr/local/bin/pilox-mesh.new`));
  });

  it("checks the binary against a SHA256SUMS beside it, whose signature must verify with the release key (openssl)", async () => {
    const dir = s.path("rel");
    mkdirSync(dir);
    const b = fakeBinary("rel/pilox-mesh-linux-x64", "3.0.0");
    await run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", s.path("release.key")]);
    await run("openssl", ["pkey", "-in", s.path("release.key"), "-pubout", "-out", s.path("release.pub")]);
    await run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", s.path("other.key")]);
    const sign = (key: string) => run("openssl", ["pkeyutl", "-sign", "-inkey", s.path(key), "-rawin", "-in", `${dir}/SHA256SUMS`, "-out", `${dir}/SHA256SUMS.sig`]);
    const inst = (...extra: string[]) => install(["--root", s.path("root2"), "--binary", b.path, ...extra]);

    writeFileSync(`${dir}/SHA256SUMS`, `${"1".repeat(64)}  pilox-mesh-linux-x64\n`);
    await sign("release.key");
    const wrongSum = await inst("--pubkey", s.path("release.pub"));
    assert.equal(wrongSum.code, 1);
    assert.match(wrongSum.stderr, /SHA-256 mismatch/);

    writeFileSync(`${dir}/SHA256SUMS`, `${b.sha}  pilox-mesh-linux-x64\n`);
    await sign("other.key");
    const badSig = await inst("--pubkey", s.path("release.pub"));
    assert.equal(badSig.code, 1);
    assert.match(badSig.stderr, /SHA256SUMS\.sig does not verify/);
    assert.ok(!existsSync(s.path("root2/usr/local/bin/pilox-mesh")));

    const noKey = await inst();
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /pins no release key[\s\S]*--insecure/);

    await sign("release.key");
    const good = await inst("--pubkey", s.path("release.pub"));
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stderr, /SHA256SUMS signature verified/);
  });

  it("refuses a binary with no checksum to check against, unless --insecure", async () => {
    const dir = s.path("nosums");
    mkdirSync(dir);
    const b = fakeBinary("nosums/pilox-mesh-linux-x64", "4.0.0");
    const refused = await install(["--root", s.path("root4"), "--binary", b.path]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /no SHA-256 to check the binary against[\s\S]*--insecure/);
    writeFileSync(`${dir}/SHA256SUMS`, `${"2".repeat(64)}  something-else\n`);
    const unlisted = await install(["--root", s.path("root4"), "--binary", b.path]);
    assert.equal(unlisted.code, 1);
    assert.match(unlisted.stderr, /lists no pilox-mesh-linux-x64/);
    const forced = await install(["--root", s.path("root4"), "--binary", b.path, "--insecure"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning \(--insecure\)/);
  });

  it("an upgrade whose binary rejects the installed config, or does not run, changes nothing", async () => {
    const r5 = s.path("root5");
    assert.equal((await install(["--root", r5, "--binary", v1.path, "--sha256", v1.sha])).code, 0);
    const picky = s.write("picky", `#!/bin/sh\nfor a in "$@"; do [ "$a" = check-config ] && { echo "bad key" >&2; exit 78; }; done\necho "pilox-mesh 5.0.0"\n`, 0o755);
    const pickySha = createHash("sha256").update(readFileSync(picky)).digest("hex");
    const refused = await install(["--root", r5, "--binary", picky, "--sha256", pickySha]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /bad key[\s\S]*rejects .*pilox-mesh\.toml: nothing was changed/);
    assert.equal(readFileSync(`${r5}/usr/local/bin/pilox-mesh`, "utf8"), readFileSync(v1.path, "utf8"));
    const broken = s.write("broken", "#!/bin/sh\nexit 3\n", 0o755);
    const brokenSha = createHash("sha256").update(readFileSync(broken)).digest("hex");
    const rb = await install(["--root", r5, "--binary", broken, "--sha256", brokenSha, "--skip-check"]);
    assert.equal(rb.code, 1);
    assert.match(rb.stderr, /does not run on this host: rolled back/);
    assert.equal(readFileSync(`${r5}/usr/local/bin/pilox-mesh`, "utf8"), readFileSync(v1.path, "utf8"));
  });

  it("--help prints its usage, not its source", async () => {
    const r = await run("sh", [`${ROOT}/install.sh`, "--help"]);
    assert.match(r.stdout, /^usage: install\.sh/);
    assert.match(r.stdout, /--insecure/);
    assert.doesNotMatch(r.stdout, /^#/m);
  });

  it("--no-systemd leaves the unit out; DESTDIR works like --root", async () => {
    const r = await run("sh", [`${ROOT}/install.sh`, "--binary", v1.path, "--sha256", v1.sha, "--no-systemd"], {
      env: { PATH: process.env["PATH"]!, DESTDIR: s.path("root3") },
    });
    assert.ok(r.stderr.includes("installed"));
    assert.ok(existsSync(s.path("root3/usr/local/bin/pilox-mesh")));
    assert.ok(!existsSync(s.path("root3/etc/systemd/system/pilox-mesh.service")));
  });

  it("--uninstall keeps config and state; --purge removes them and the user", async () => {
    assert.equal((await install(["--root", root, "--uninstall"])).code, 0);
    assert.ok(!existsSync(`${root}/usr/local/bin/pilox-mesh`));
    assert.ok(!existsSync(`${root}/etc/systemd/system/pilox-mesh.service`));
    assert.ok(existsSync(`${root}/etc/pilox-mesh/pilox-mesh.toml`));
    assert.ok(existsSync(`${root}/var/lib/pilox-mesh/identity.key`));
    assert.equal((await install(["--root", root, "--uninstall", "--purge"])).code, 0);
    assert.ok(!existsSync(`${root}/etc/pilox-mesh`));
    assert.ok(!existsSync(`${root}/var/lib/pilox-mesh`));
    assert.doesNotMatch(readFileSync(`${root}/etc/passwd`, "utf8"), /pilox-mesh/);
  });

  it("refuses unknown options and a missing source", async () => {
    assert.equal((await install(["--root", root, "--frobnicate"])).code, 1);
    const r = await install(["--root", root]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--url RELEASE_URL or --binary PATH/);
  });

  it("the published copy with a release key pinned says so, never \"pins none\"", async () => {
    const { pinReleaseKey } = await import("../build/install-script.ts");
    const pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
    const pinned = pinReleaseKey(readFileSync(`${ROOT}/install.sh`, "utf8"), pem);
    assert.doesNotMatch(pinned, /pins none|# PINNED: none/);
    assert.match(pinned, /# PINNED: the release key \(SHA-256 of its PEM starts [0-9a-f]{16}\)/);
    assert.ok(pinned.includes(`RELEASE_PUBKEY="${pem}"`));
    const f = s.write("pinned-install.sh", pinned, 0o755);
    await run("dash", ["-n", f]);
  });

  it("is POSIX sh (dash parses it) and its embedded unit is systemd/pilox-mesh.service", async () => {
    await run("dash", ["-n", `${ROOT}/install.sh`]);
    const script = readFileSync(`${ROOT}/install.sh`, "utf8");
    const embedded = /cat > "\$UNIT\.tmp" <<'UNIT'\n([\s\S]*?)\nUNIT\n/.exec(script)![1] + "\n";
    assert.equal(embedded, readFileSync(`${ROOT}/systemd/pilox-mesh.service`, "utf8"));
  });
});

describe("systemd unit", () => {
  it("passes systemd-analyze verify", async () => {
    const dir = s.path("unit");
    mkdirSync(dir);
    // verify checks that ExecStart exists: point it at a real executable.
    writeFileSync(`${dir}/pilox-mesh.service`, readFileSync(`${ROOT}/systemd/pilox-mesh.service`, "utf8").replaceAll("/usr/local/bin/pilox-mesh", process.execPath));
    const r = await run("systemd-analyze", ["verify", `${dir}/pilox-mesh.service`]);
    assert.equal(r.stderr.trim(), "");
  });

  it("systemd-analyze security rates it OK (exposure ≤ 2.0)", async () => {
    const r = await run("systemd-analyze", ["security", "--offline=yes", "--no-pager", `${ROOT}/systemd/pilox-mesh.service`]).catch((e) => e as { stdout: string });
    const m = /Overall exposure level for pilox-mesh\.service: (\d+\.\d+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]}`);
  });
});
