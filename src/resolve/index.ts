export { resolveHandle, ResolveCache, type Resolution, type ResolveOptions, type ResolveResult, type Routes } from "./resolve.ts";
