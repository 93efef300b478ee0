/**
 * Secrets live in files that only their owner can read. A file readable by group or others is
 * refused, with the chmod that fixes it.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, openSync, readFileSync, statSync, writeSync, closeSync } from "node:fs";
import { dirname } from "node:path";

export const MAX_SECRET_FILE_BYTES = 64 * 1024;

export class SecretFileError extends Error {
  override name = "SecretFileError";
}

/** Reads a secret file's content without its trailing newline. */
export function readSecretFile(file: string): Buffer {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecretFileError(code === "ENOENT" ? `secret file ${file} does not exist` : `cannot read secret file ${file}: ${code}`);
  }
  if (!st.isFile()) throw new SecretFileError(`secret file ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new SecretFileError(
      `secret file ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}); run: chmod 600 ${file}`,
    );
  }
  if (st.size > MAX_SECRET_FILE_BYTES) throw new SecretFileError(`secret file ${file} is larger than ${MAX_SECRET_FILE_BYTES} bytes`);
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    throw new SecretFileError(`cannot read secret file ${file}: ${(err as NodeJS.ErrnoException).code}`);
  }
  let end = buf.length;
  while (end > 0 && (buf[end - 1] === 0x0a || buf[end - 1] === 0x0d)) end--;
  // An empty secret is no secret: a token or password file left empty by a failed write.
  if (end === 0) throw new SecretFileError(`secret file ${file} is empty`);
  return buf.subarray(0, end);
}

/** Creates a secret file of 64 random hex characters (mode 0600) unless it exists. */
export function ensureSecretFile(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw err;
  }
  try {
    writeSync(fd, randomBytes(32).toString("hex") + "\n");
  } finally {
    closeSync(fd);
  }
}
