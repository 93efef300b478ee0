/** dist/install.sh: the repository's install.sh with the release key pinned (when there is one). */
import { createHash } from "node:crypto";

export function pinReleaseKey(script: string, publicKeyPem: string): string {
  if (!script.includes('RELEASE_PUBKEY=""')) throw new Error('install.sh has no RELEASE_PUBKEY="" line to pin the key in');
  if (!script.includes("# PINNED: none (a development copy)")) throw new Error("install.sh has no '# PINNED: none' line to say what it pins");
  // The comment above the key says what this copy pins (it read "pins none" with a key pinned).
  const id = createHash("sha256").update(publicKeyPem).digest("hex").slice(0, 16);
  return script.replace('RELEASE_PUBKEY=""', `RELEASE_PUBKEY="${publicKeyPem}"`).replace("# PINNED: none (a development copy)", `# PINNED: the release key (SHA-256 of its PEM starts ${id})`);
}
