/**
 * The layering check (.dependency-cruiser.cjs, run by `npm test` before the suites) passes on
 * src/ and fails on a planted cycle and on a lower layer importing a higher one.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ROOT } from "./helpers/cli.ts";
import { scratch } from "./helpers/tmp.ts";

const s = scratch();
after(() => s.cleanup());

function cruise(dir: string): { code: number; out: string } {
  const r = spawnSync(process.execPath, [join(ROOT, "node_modules", ".bin", "depcruise"), "src", "--config", join(ROOT, ".dependency-cruiser.cjs"), "--output-type", "err"], { cwd: dir, encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

function copyOfSrc(name: string): string {
  const dir = s.path(name);
  cpSync(join(ROOT, "src"), join(dir, "src"), { recursive: true });
  cpSync(join(ROOT, "tsconfig.json"), join(dir, "tsconfig.json"));
  return dir;
}

describe("the layering check", { timeout: 120_000 }, () => {
  it("passes on src/", () => {
    const r = cruise(ROOT);
    assert.equal(r.code, 0, r.out);
  });

  it("fails on a planted folder cycle", () => {
    const dir = copyOfSrc("cycle");
    // federation imports registry-free discovery; make discovery import federation back.
    writeFileSync(join(dir, "src", "discovery", "planted.ts"), 'import { forwarderGroup } from "../federation/index.ts";\nexport const x = forwarderGroup;\n');
    const r = cruise(dir);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /no-folder-cycles/);
  });

  it("fails on a lower layer importing a higher one", () => {
    const dir = copyOfSrc("upward");
    writeFileSync(join(dir, "src", "bus", "planted.ts"), 'import type { Appliance } from "../daemon/appliance.ts";\nexport type X = Appliance;\n');
    const r = cruise(dir);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /layer-2-imports-no-higher-layer/);
  });
});
