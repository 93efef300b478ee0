export { run, USAGE } from "./main.ts";
export { EXIT, type Io } from "./args.ts";
