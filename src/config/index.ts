export { ConfigError, EX_CONFIG, formatProblem, type ConfigProblem } from "./errors.ts";
export { configPathFrom, loadConfig, socketPathOf, type Config, type LoadedConfig, type LoadOptions } from "./load.ts";
export { redactedToml } from "./redact.ts";
export { autoBusKeyPath, keyWarnings, resolveSecrets, type Secrets, type WanSecrets } from "./resolve.ts";
export { readSecretFile, SecretFileError } from "../secrets/index.ts";
export { DEFAULT_CONFIG_PATH } from "./paths.ts";
export { checkReload, pinnedForReload, reloadRefusal, restartOnlyChanges, type ReloadCheck } from "./reload.ts";
