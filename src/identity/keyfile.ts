/** The instance identity on disk: a seed file (64 hex, mode 0600), created on first start. */
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { readSecretFile } from "../secrets/index.ts";
import { keyFromSeedHex, type Ed25519Key } from "./ed25519.ts";

export function readKeyFile(file: string): Ed25519Key {
  const text = readSecretFile(file).toString("utf8").trim();
  try {
    return keyFromSeedHex(text);
  } catch {
    throw new Error(`${file}: not an Ed25519 seed (expected 64 hex characters)`);
  }
}

/** Writes a new seed file; refuses to overwrite. Returns the key. */
export function createKeyFile(file: string): Ed25519Key {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const seed = randomBytes(32).toString("hex");
  const fd = openSync(file, "wx", 0o600);
  try {
    writeSync(fd, seed + "\n");
  } finally {
    closeSync(fd);
  }
  return keyFromSeedHex(seed);
}

export function readOrCreateKeyFile(file: string): Ed25519Key {
  try {
    return readKeyFile(file);
  } catch (err) {
    if (!/does not exist/.test((err as Error).message)) throw err;
    return createKeyFile(file);
  }
}
