/** The service's files as install.sh and the .deb lay them out (one contract for both). */
import assert from "node:assert/strict";
import { statSync } from "node:fs";

export const mode = (p: string): string => (statSync(p).mode & 0o7777).toString(8).padStart(4, "0");

/** Config readable by the service's group only; state and identity key owned by the service user. */
export function assertServiceLayout(root: string, uid: number, gid: number): void {
  assert.equal(mode(`${root}/etc/pilox-mesh`), "0750");
  assert.equal(statSync(`${root}/etc/pilox-mesh`).gid, gid);
  assert.equal(mode(`${root}/etc/pilox-mesh/pilox-mesh.toml`), "0640");
  assert.equal(mode(`${root}/var/lib/pilox-mesh`), "0700");
  assert.equal(statSync(`${root}/var/lib/pilox-mesh`).uid, uid);
  assert.equal(mode(`${root}/var/lib/pilox-mesh/identity.key`), "0600");
  assert.equal(statSync(`${root}/var/lib/pilox-mesh/identity.key`).uid, uid);
}
