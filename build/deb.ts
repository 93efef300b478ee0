/**
 * Debian packages of the single executables (amd64, arm64): /usr/bin/pilox-mesh, the systemd
 * unit in /lib/systemd/system, /etc/pilox-mesh/pilox-mesh.toml as a conffile, and maintainer
 * scripts (packaging/deb/) that create the user and directories, enable the unit on first
 * install, restart it on upgrade, and remove config, state and user on purge.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { completion, manPage } from "../src/cli/docs.ts";
import { cliText } from "../src/cli/main.ts";
import type { Arch } from "./runtime.ts";

const DEB_ARCH: Record<Arch, string> = { x64: "amd64", arm64: "arm64" };

export function buildDeb(o: { root: string; arch: Arch; binary: string; version: string; outDir: string; work: string }): string {
  const arch = DEB_ARCH[o.arch];
  const dir = join(o.work, `deb-${arch}`);
  rmSync(dir, { recursive: true, force: true });
  for (const d of ["DEBIAN", "usr/bin", "lib/systemd/system", "etc/pilox-mesh/conf.d", "usr/share/doc/pilox-mesh"]) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(o.binary, join(dir, "usr/bin/pilox-mesh"));
  chmodSync(join(dir, "usr/bin/pilox-mesh"), 0o755);
  const unit = readFileSync(join(o.root, "systemd", "pilox-mesh.service"), "utf8").replaceAll("/usr/local/bin/pilox-mesh", "/usr/bin/pilox-mesh");
  writeFileSync(join(dir, "lib/systemd/system/pilox-mesh.service"), unit, { mode: 0o644 });
  copyFileSync(join(o.root, "packaging", "pilox-mesh.toml"), join(dir, "etc/pilox-mesh/pilox-mesh.toml"));
  chmodSync(join(dir, "etc/pilox-mesh/pilox-mesh.toml"), 0o640);
  writeFileSync(join(dir, "usr/share/doc/pilox-mesh/copyright"), "pilox-mesh. License: Apache-2.0 (/usr/share/common-licenses/Apache-2.0).\n", { mode: 0o644 });
  // The docs the default configuration points to, where Debian keeps a package's documentation.
  for (const f of ["configuration.md", "operator-guide.md", "wire-formats.md", "agent-api.md", "architecture.md"]) {
    copyFileSync(join(o.root, "docs", f), join(dir, "usr/share/doc/pilox-mesh", f));
    chmodSync(join(dir, "usr/share/doc/pilox-mesh", f), 0o644);
  }
  // The man page and shell completions, generated from the CLI's own help text (one source).
  const text = cliText();
  const put = (path: string, content: string | Buffer) => {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), content, { mode: 0o644 });
  };
  put("usr/share/man/man1/pilox-mesh.1.gz", gzipSync(manPage(text, o.version), { level: 9 }));
  put("usr/share/bash-completion/completions/pilox-mesh", completion("bash", text));
  put("usr/share/zsh/vendor-completions/_pilox-mesh", completion("zsh", text));
  put("usr/share/fish/vendor_completions.d/pilox-mesh.fish", completion("fish", text));
  // Alert rules and a dashboard to load into Prometheus and Grafana.
  put("usr/share/pilox-mesh/prometheus/alerts.yml", readFileSync(join(o.root, "packaging", "prometheus", "alerts.yml")));
  put("usr/share/pilox-mesh/grafana/pilox-mesh.json", readFileSync(join(o.root, "packaging", "grafana", "pilox-mesh.json")));
  for (const s of ["postinst", "prerm", "postrm"]) {
    copyFileSync(join(o.root, "packaging", "deb", s), join(dir, "DEBIAN", s));
    chmodSync(join(dir, "DEBIAN", s), 0o755);
  }
  writeFileSync(join(dir, "DEBIAN/conffiles"), "/etc/pilox-mesh/pilox-mesh.toml\n");
  const kib = Math.ceil(statSync(o.binary).size / 1024);
  writeFileSync(
    join(dir, "DEBIAN/control"),
    [
      "Package: pilox-mesh",
      `Version: ${o.version}`,
      `Architecture: ${arch}`,
      "Maintainer: pilox-mesh developers <pilox-mesh@localhost>",
      // The executable embeds Node 24, which links these dynamically.
      "Depends: libc6 (>= 2.28), libstdc++6 (>= 10), libgcc-s1",
      "Recommends: redis-server",
      "Section: net",
      "Priority: optional",
      `Installed-Size: ${kib}`,
      "Homepage: https://github.com/pilox/pilox-mesh",
      "Description: mesh layer for AI-agent platforms",
      " One executable: a signed local bus (Redis pub/sub and Streams, or embedded), federation",
      " between trusted instances (Ed25519, EdDSA tokens, signed manifests) and a signed",
      " discovery document, wire-compatible with Pilox v1.",
      "",
    ].join("\n"),
  );
  const out = join(o.outDir, `pilox-mesh_${o.version}_${arch}.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "-z1", "--build", dir, out], { stdio: ["ignore", "ignore", "inherit"] });
  rmSync(dir, { recursive: true, force: true });
  return out;
}
