import assert from "node:assert/strict";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError } from "../config/index.ts";
import { refuseRootInForeignDir } from "./owner.ts";

const root = mkdtempSync(join(tmpdir(), "pilox-owner-"));
after(() => rmSync(root, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;

describe("root and a state directory that belongs to another user", () => {
  it("is refused, naming the owner and the command that runs as it", () => {
    const dir = mkdtempSync(join(root, "d-"));
    if (isRoot) chownSync(dir, 65534, 65534); // as root: hand it to another user; else it is already ours, not root's
    assert.throws(
      () => refuseRootInForeignDir(dir, 0),
      (e: unknown) => e instanceof ConfigError && /node\.state_dir: running as root, but .* belongs to .*runuser -u \S+ -- pilox-mesh serve/.test(e.message),
    );
  });
  it("is fine for root in its own directory, and for any other user", () => {
    const dir = mkdtempSync(join(root, "d-"));
    if (isRoot) assert.doesNotThrow(() => refuseRootInForeignDir(dir, 0));
    assert.doesNotThrow(() => refuseRootInForeignDir(dir, 1000));
  });
});
