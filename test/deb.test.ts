/**
 * The .deb packages from `npm run build`, installed, upgraded, removed and purged with dpkg in
 * a scratch root (dpkg --root, maintainer scripts run chrootless with DPKG_ROOT set).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { buildDeb } from "../build/deb.ts";
import { buildVersion } from "../build/version.ts";
import { ROOT } from "./helpers/cli.ts";
import { assertServiceLayout, mode } from "./helpers/layout.ts";
import { scratch } from "./helpers/tmp.ts";

const run = promisify(execFile);
const s = scratch();
after(() => s.cleanup());
const version = buildVersion(ROOT);
const DEB = (arch: string) => `${ROOT}/dist/pilox-mesh_${version}_${arch}.deb`;
const root = s.path("root");
const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

/** dpkg on the scratch root; libc and friends are the host's, so dependencies are not checked. */
function dpkg(...args: string[]) {
  return run("dpkg", [`--root=${root}`, `--admindir=${root}/var/lib/dpkg`, "--force-script-chrootless", "--force-depends", "--force-confold", "--log=/dev/null", ...args]);
}

describe(".deb packages", () => {
  it("exist for amd64 and arm64 with the executables of the build, listed in SHA256SUMS", async () => {
    const sums = readFileSync(`${ROOT}/dist/SHA256SUMS`, "utf8");
    for (const [arch, bin] of [["amd64", "x64"], ["arm64", "arm64"]] as const) {
      assert.ok(sums.includes(`${sha(DEB(arch))}  pilox-mesh_${version}_${arch}.deb`), arch);
      const info = (await run("dpkg-deb", ["-f", DEB(arch), "Architecture", "Package", "Version", "Depends"])).stdout;
      assert.match(info, new RegExp(`Architecture: ${arch}`));
      assert.match(info, /Depends: libc6/);
      const x = s.path(`x-${arch}`);
      await run("dpkg-deb", ["-x", DEB(arch), x]);
      assert.equal(sha(`${x}/usr/bin/pilox-mesh`), sha(`${ROOT}/dist/pilox-mesh-linux-${bin}`));
      assert.match(readFileSync(`${x}/lib/systemd/system/pilox-mesh.service`, "utf8"), /^ExecStart=\/usr\/bin\/pilox-mesh serve$/m);
      // The reference the default configuration names ships with the package.
      const conf = readFileSync(`${x}/etc/pilox-mesh/pilox-mesh.toml`, "utf8");
      const ref = /Reference: (\/usr\/share\/doc\/pilox-mesh\/\S+\.md)/.exec(conf)?.[1];
      assert.ok(ref, conf.slice(0, 300));
      assert.equal(readFileSync(`${x}${ref}`, "utf8"), readFileSync(`${ROOT}/docs/configuration.md`, "utf8"));
      assert.ok(existsSync(`${x}/usr/share/doc/pilox-mesh/operator-guide.md`));
      // The man page and completions come from the CLI's own help (one source).
      const man = await run("sh", ["-c", `zcat ${x}/usr/share/man/man1/pilox-mesh.1.gz | groff -man -Tutf8 -ww 2>&1 >/dev/null`]);
      assert.equal(man.stdout + man.stderr, "", "groff has no warning about the man page");
      const page = (await run("sh", ["-c", `MANWIDTH=200 man -l ${x}/usr/share/man/man1/pilox-mesh.1.gz`])).stdout;
      assert.match(page, /registry template --handle H --origin URL/);
      const bash = readFileSync(`${x}/usr/share/bash-completion/completions/pilox-mesh`, "utf8");
      await run("bash", ["-n", `${x}/usr/share/bash-completion/completions/pilox-mesh`]);
      assert.match(bash, /registry\) words="[^"]*\btemplate\b[^"]*--origin/);
      assert.ok(existsSync(`${x}/usr/share/zsh/vendor-completions/_pilox-mesh`));
      assert.ok(existsSync(`${x}/usr/share/fish/vendor_completions.d/pilox-mesh.fish`));
    }
  });

  it("installs: user, directories with owners and modes, identity key, conffile", { timeout: 60_000 }, async () => {
    mkdirSync(`${root}/var/lib/dpkg/updates`, { recursive: true });
    mkdirSync(`${root}/etc`, { recursive: true });
    for (const f of ["var/lib/dpkg/status", "etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"]) writeFileSync(`${root}/${f}`, "");
    await dpkg("-i", DEB("amd64"));
    const m = /^pilox-mesh:x:(\d+):(\d+):/m.exec(readFileSync(`${root}/etc/passwd`, "utf8"));
    assert.ok(m);
    const [uid, gid] = [Number(m[1]), Number(m[2])];
    assert.equal(mode(`${root}/usr/bin/pilox-mesh`), "0755");
    assertServiceLayout(root, uid, gid);
    const conffiles = (await run("dpkg-query", [`--admindir=${root}/var/lib/dpkg`, "-W", "-f=${Conffiles}", "pilox-mesh"])).stdout;
    assert.match(conffiles, /\/etc\/pilox-mesh\/pilox-mesh\.toml [0-9a-f]{32}/);
    // The packaged default configuration is the one install.sh writes, and it is valid.
    const script = readFileSync(`${ROOT}/install.sh`, "utf8");
    assert.equal(/cat > "\$ETC\/pilox-mesh\.toml" <<'TOML'\n([\s\S]*?)\nTOML\n/.exec(script)![1] + "\n", readFileSync(`${ROOT}/packaging/pilox-mesh.toml`, "utf8"));
    const check = await run(`${root}/usr/bin/pilox-mesh`, ["--config", `${root}/etc/pilox-mesh/pilox-mesh.toml`, "--state-dir", s.path("check"), "check-config", "--quiet"]);
    assert.match(check.stderr, /configuration OK/);
  });

  it("postinst says when the service stops right after starting, and what to run where there is no systemd", { skip: process.getuid?.() !== 0 && "needs root for a mount namespace", timeout: 60_000 }, async () => {
    // The package's own postinst, run on this host in a private mount namespace: /etc a copy,
    // /var/lib and /run empty, systemd present or not, systemctl and journalctl stand-ins that
    // start the unit and then find it dead (a bad configuration exits 78).
    const ctl = s.path("ctl");
    await run("dpkg-deb", ["-e", DEB("amd64"), ctl]);
    const fake = s.path("fakebin");
    mkdirSync(fake, { recursive: true });
    writeFileSync(`${fake}/systemctl`, '#!/bin/sh\necho "systemctl $*" >> "$CALLS"\ncase "$1" in is-active) exit 3;; esac\nexit 0\n', { mode: 0o755 });
    writeFileSync(`${fake}/journalctl`, '#!/bin/sh\necho "pilox-mesh[1]: level=error msg=\\"configuration error\\" file=/etc/pilox-mesh/pilox-mesh.toml exit=78"\n', { mode: 0o755 });
    const postinst = async (withSystemd: boolean) => {
      const calls = s.path(`calls-${withSystemd}`);
      writeFileSync(calls, "");
      const script = [
        "set -e",
        `cp -a /etc ${s.path(`etc-${withSystemd}`)}`,
        `mount --bind ${s.path(`etc-${withSystemd}`)} /etc`,
        "mount -t tmpfs none /var/lib",
        "mount -t tmpfs none /run",
        withSystemd ? "mkdir -p /run/systemd/system" : "true",
        "mkdir -p /etc/pilox-mesh && : > /etc/pilox-mesh/pilox-mesh.toml",
        `PATH=${fake}:$PATH CALLS=${calls} sh ${ctl}/postinst configure ""`,
      ].join("\n");
      const r = await run("unshare", ["-m", "--propagation", "private", "sh", "-c", script]);
      return { stderr: r.stderr, calls: readFileSync(calls, "utf8") };
    };
    const live = await postinst(true);
    assert.match(live.calls, /^systemctl enable --now pilox-mesh\.service$/m);
    assert.match(live.stderr, /the service stopped right after starting; its last lines:/);
    assert.match(live.stderr, /configuration error.*exit=78/);
    assert.match(live.stderr, /pilox-mesh check-config\), then: systemctl restart pilox-mesh/);
    const none = await postinst(false);
    assert.equal(none.calls, "", "no systemctl where there is no systemd");
    assert.match(none.stderr, /no systemd here, so nothing was started\. Run it as its user: runuser -u pilox-mesh -- pilox-mesh serve/);
  });

  it("upgrades: the new binary in place, an edited conffile and the identity kept", { timeout: 60_000 }, async () => {
    writeFileSync(`${root}/etc/pilox-mesh/pilox-mesh.toml`, "# edited by the operator\n");
    const key = readFileSync(`${root}/var/lib/pilox-mesh/identity.key`, "utf8");
    const fake = s.write("fake", '#!/bin/sh\ncase "$1" in version) echo "pilox-mesh 9.9.9" ;; keygen) exit 1 ;; esac\n', 0o755);
    mkdirSync(s.path("out"));
    const next = buildDeb({ root: ROOT, arch: "x64", binary: fake, version: `${version}+next`, outDir: s.path("out"), work: s.path("work") });
    await dpkg("-i", next);
    assert.equal(readFileSync(`${root}/usr/bin/pilox-mesh`, "utf8"), readFileSync(fake, "utf8"));
    assert.equal(readFileSync(`${root}/etc/pilox-mesh/pilox-mesh.toml`, "utf8"), "# edited by the operator\n");
    assert.equal(readFileSync(`${root}/var/lib/pilox-mesh/identity.key`, "utf8"), key);
    assert.match((await run("dpkg-query", [`--admindir=${root}/var/lib/dpkg`, "-W", "-f=${Version}", "pilox-mesh"])).stdout, /\+next$/);
  });

  it("remove keeps config and state; purge removes them and the user", { timeout: 60_000 }, async () => {
    await dpkg("--remove", "pilox-mesh");
    assert.ok(!existsSync(`${root}/usr/bin/pilox-mesh`));
    assert.ok(existsSync(`${root}/etc/pilox-mesh/pilox-mesh.toml`));
    assert.ok(existsSync(`${root}/var/lib/pilox-mesh/identity.key`));
    await dpkg("--purge", "pilox-mesh");
    assert.ok(!existsSync(`${root}/etc/pilox-mesh`));
    assert.ok(!existsSync(`${root}/var/lib/pilox-mesh`));
    assert.doesNotMatch(readFileSync(`${root}/etc/passwd`, "utf8"), /pilox-mesh/);
    assert.doesNotMatch(readFileSync(`${root}/etc/group`, "utf8"), /pilox-mesh/);
  });
});

describe("build versions", () => {
  it("every build between releases has a distinct version that dpkg orders after the one before; a tagged release is the plain version", async () => {
    const repo = s.path("version-repo");
    mkdirSync(repo, { recursive: true });
    const g = (...a: string[]) => run("git", ["-C", repo, "-c", "user.name=t", "-c", "user.email=t@example", ...a]);
    writeFileSync(`${repo}/package.json`, JSON.stringify({ version: "1.2.3" }));
    await g("init", "-q");
    await g("add", "package.json");
    await g("commit", "-qm", "one");
    await g("tag", "v1.2.3");
    const release = buildVersion(repo);
    assert.equal(release, "1.2.3");
    await g("commit", "-q", "--allow-empty", "-m", "two");
    const snap1 = buildVersion(repo);
    await g("commit", "-q", "--allow-empty", "-m", "three");
    const snap2 = buildVersion(repo);
    assert.match(snap1, /^1\.2\.3\+git2\.[0-9a-f]{12}$/);
    assert.match(snap2, /^1\.2\.3\+git3\.[0-9a-f]{12}$/);
    await run("dpkg", ["--compare-versions", snap1, "gt", release]);
    await run("dpkg", ["--compare-versions", snap2, "gt", snap1]);
    await run("dpkg", ["--compare-versions", "1.2.4", "gt", snap2]);
  });

  it("the built executable and package carry the build's version", async () => {
    const v = buildVersion(ROOT);
    const out = (await run(`${ROOT}/dist/pilox-mesh-linux-x64`, ["version"])).stdout;
    assert.ok(out.startsWith(`pilox-mesh ${v} `), out);
    assert.equal((await run("dpkg-deb", ["-f", DEB("amd64"), "Version"])).stdout.trim(), v);
  });
});
