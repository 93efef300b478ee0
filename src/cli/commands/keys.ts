/** `keygen`, `pubkey`: the instance's Ed25519 identity files. */
import { createKeyFile, readKeyFile } from "../../identity/index.ts";
import { EXIT, parse, required, type Io } from "../args.ts";

export async function keygen(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { out: { type: "string" } });
  const out = required(values.out, "--out");
  let key;
  try {
    key = createKeyFile(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      io.stderr(`pilox-mesh keygen: ${out} exists; refusing to overwrite a key\n`);
      return EXIT.failure;
    }
    throw err;
  }
  io.stdout(`${key.publicKeyHex}\n`);
  io.stderr(`wrote ${out} (mode 0600), kid ${key.kid}\n`);
  return EXIT.ok;
}

export async function pubkey(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { "key-file": { type: "string" }, kid: { type: "boolean" } });
  const key = readKeyFile(required(values["key-file"], "--key-file"));
  io.stdout(values.kid ? `${key.publicKeyHex} ${key.kid}\n` : `${key.publicKeyHex}\n`);
  return EXIT.ok;
}
