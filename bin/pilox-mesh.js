#!/usr/bin/env node
// Runs the TypeScript sources through tsx (development and npm installs); the shipped
// single executable bundles the same entry point (build/).
import { register } from "tsx/esm/api";
register();
await import("../src/cli/entry.ts");
