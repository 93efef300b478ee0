/** A configuration problem, located as precisely as we know: file, line and column, key path. */
export interface ConfigProblem {
  file?: string;
  line?: number;
  column?: number;
  key?: string;
  message: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join("\n"));
  }
}

export function formatProblem(p: ConfigProblem): string {
  let where = p.file ?? "<defaults>";
  if (p.line !== undefined) where += `:${p.line}${p.column !== undefined ? `:${p.column}` : ""}`;
  return p.key ? `${where}: ${p.key}: ${p.message}` : `${where}: ${p.message}`;
}

/** sysexits.h EX_CONFIG: what a service manager and an operator expect for a bad config. */
export const EX_CONFIG = 78;
