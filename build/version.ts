/**
 * The version a build carries (`pilox-mesh version`, the .deb's Version, the metrics' build
 * info): package.json's `version` for a release (HEAD tagged `v<version>`); between releases a
 * Debian snapshot version, `<version>+git<commits>.<sha>`, so every build is distinct and later
 * builds sort later (`apt install ./newer.deb` upgrades; `dpkg --compare-versions` agrees),
 * and a release sorts before the snapshots made after it. PILOX_BUILD_VERSION overrides it (a
 * packager's own scheme); without git (a source tarball) it is the package version.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const git = (root: string, args: string[]): string | undefined => {
  try {
    return execFileSync("git", ["-C", root, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
};

export function packageVersion(root: string): string {
  return (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
}

export function buildVersion(root: string): string {
  const override = process.env["PILOX_BUILD_VERSION"];
  if (override) {
    if (!/^[0-9][A-Za-z0-9.+~-]*$/.test(override)) throw new Error(`PILOX_BUILD_VERSION=${override} is not a Debian version`);
    return override;
  }
  const base = packageVersion(root);
  const tags = git(root, ["tag", "--points-at", "HEAD"])?.split("\n") ?? [];
  if (tags.includes(`v${base}`)) return base;
  const count = git(root, ["rev-list", "--count", "HEAD"]);
  const sha = git(root, ["rev-parse", "--short=12", "HEAD"]);
  return count && sha ? `${base}+git${count}.${sha}` : base;
}
