export { keyFromSeedHex, publicKeyFromHex, signHex, thumbprint, verifyHex, type Ed25519Key } from "./ed25519.ts";
export { createKeyFile, readKeyFile, readOrCreateKeyFile } from "./keyfile.ts";
export { collectChecks, verifyAhead, verifyHexOf, type Check } from "./verify-ahead.ts";
