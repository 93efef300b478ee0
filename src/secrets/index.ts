export { bearerMatches, bearerToken, tokenMatches } from "./bearer.ts";
export { ensureSecretFile, MAX_SECRET_FILE_BYTES, readSecretFile, SecretFileError } from "./file.ts";
